{{/*
cert-sidecar: named templates for a parent chart. Every template takes the parent's root
context (`.`) and reads the settings under `.Values "cert-sidecar"`, over this library's defaults.

  initContainers:
    {{- include "cert-sidecar.initContainers" . | nindent 8 }}
  containers:
    - name: app
      volumeMounts:
        {{- include "cert-sidecar.volumeMount" . | nindent 12 }}
    {{- include "cert-sidecar.containers" . | nindent 8 }}
  volumes:
    {{- include "cert-sidecar.volumes" . | nindent 8 }}
*/}}

{{/* The effective settings as YAML: this library's values.yaml under the parent's. */}}
{{- define "cert-sidecar.settings" -}}
{{- $v := index .Values "cert-sidecar" | default dict -}}
{{- $form := $v.form | default "native" -}}
{{- if not (has $form (list "native" "classic" "init")) -}}
{{- fail (printf "cert-sidecar.form: %q is not a form; use native, classic or init" $form) -}}
{{- end -}}
{{- if not (dig "certificate" "commonName" "" $v) -}}
{{- fail "cert-sidecar.certificate.commonName: is required; set the name the certificate is for, e.g. app.example.com" -}}
{{- end -}}
{{- /* What the sidecar would refuse at start (a crash loop) is refused here, at install. */ -}}
{{- $f := $v.files | default dict -}}
{{- $sc := $v.securityContext | default dict -}}
{{- if and (not (kindIs "invalid" $f.uid)) (ne (toString $f.uid) (toString $sc.runAsUser)) -}}
{{- $caps := dig "capabilities" "add" list $sc -}}
{{- if not (or (has "CHOWN" $caps) (has "CAP_CHOWN" $caps)) -}}
{{- fail (printf "cert-sidecar.files.uid: %v is not securityContext.runAsUser (%v) and the sidecar lacks the CHOWN capability, so it could not give its files away: add CHOWN to securityContext.capabilities.add, or leave files.uid unset and share a group (files.gid, keyMode 0640)" $f.uid $sc.runAsUser) -}}
{{- end -}}
{{- if not (regexMatch "^0?[0-7][4-7]0$" (toString ($f.keyMode | default "0600"))) -}}
{{- fail (printf "cert-sidecar.files.keyMode: %v on files owned by uid %v leaves the sidecar (uid %v) unable to read its own key back: use 0640 with files.gid set to a group the sidecar is in" $f.keyMode $f.uid $sc.runAsUser) -}}
{{- end -}}
{{- end -}}
{{- toYaml $v -}}
{{- end -}}

{{- define "cert-sidecar.image" -}}
{{- $v := fromYaml (include "cert-sidecar.settings" .) -}}
{{- printf "%s:%s" $v.image.repository ($v.image.tag | toString) -}}
{{- end -}}

{{/* One env entry when the value is set; nothing otherwise (the sidecar's default applies). */}}
{{- define "cert-sidecar.envVar" -}}
{{- $value := index . 1 -}}
{{- if or (kindIs "bool" $value) (kindIs "float64" $value) (kindIs "int" $value) (kindIs "int64" $value) $value }}
- name: {{ index . 0 }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* The sidecar's environment: one variable per setting of docs/sidecar.md. */}}
{{- define "cert-sidecar.env" -}}
{{- $v := fromYaml (include "cert-sidecar.settings" .) -}}
{{- $c := $v.certificate -}}
{{- $f := $v.files -}}
{{- $r := $v.renewal -}}
{{- $sans := $c.sans -}}
{{- if kindIs "slice" $sans }}{{ $sans = ternary "" (toJson $sans) (empty $sans) }}{{ end -}}
{{- if kindIs "map" $sans }}{{ $sans = toJson $sans }}{{ end -}}
{{- $listen := "off" -}}
{{- if $v.health.port }}{{ $listen = printf "0.0.0.0:%v" $v.health.port }}{{ end -}}
{{- if eq ($v.issuer | default "lambda") "kubernetes" }}
{{- $k := $v.kubernetes }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_ISSUER" "kubernetes") }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_SIGNER_NAME" $k.signerName) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_CSR_TIMEOUT" $k.csrTimeout) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_TRUST_BUNDLE_FILE" (printf "%s/%s.crt" $k.trustBundle.mountPath (last (splitList "/" $k.signerName)))) }}
{{- else }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_FUNCTION" $v.ca.function) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_REGION" $v.ca.region) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_ENDPOINT_URL" $v.ca.endpointUrl) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_ROLE_ARN" $v.ca.roleArn) }}
{{- include "cert-sidecar.envVar" (list "AWS_PROFILE" $v.ca.profile) }}
{{- end }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_COMMON_NAME" $c.commonName) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_SANS" $sans) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_ORGANIZATION" $c.organization) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_ORGANIZATIONAL_UNIT" $c.organizationalUnit) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_LOCALITY" $c.locality) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_STATE" $c.state) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_COUNTRY" $c.country) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_EMAIL_ADDRESS" $c.emailAddress) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_LIFETIME_DAYS" $c.lifetimeDays) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_MAX_LIFETIME_DAYS" $c.maxLifetimeDays) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_PURPOSES" (join "," ($c.purposes | default list))) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_EXTENDED_KEY_USAGES" (join "," ($c.extendedKeyUsages | default list))) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_KEY_ALGORITHM" $c.keyAlgorithm) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_OUTPUT_DIR" $f.mountPath) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_KEY_FILE" $f.keyFile) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_CERT_FILE" $f.certFile) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_CA_FILE" $f.caFile) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_SERVERLESS_CA_NAMES" $f.serverlessCaNames) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_COMBINED_FILE" $f.combinedFile) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_UID" $f.uid) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_GID" $f.gid) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_KEY_MODE" $f.keyMode) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_FILE_MODE" $f.fileMode) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_DIR_MODE" $f.dirMode) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_RENEWAL_POINT" $r.point) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_JITTER" $r.jitter) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_BACKOFF_BASE" $r.backoffBase) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_BACKOFF_CAP" $r.backoffCap) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_MIN_RENEWAL_INTERVAL" $r.minRenewalInterval) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_ONCE_TIMEOUT" $r.onceTimeout) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_RELOAD_SIGNAL" $v.reload.signal) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_RELOAD_PID_FILE" $v.reload.pidFile) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_RELOAD_PROCESS_NAME" $v.reload.processName) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_RELOAD_COMMAND" $v.reload.command) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_RELOAD_URL" $v.reload.url) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_LISTEN" $listen) }}
{{- include "cert-sidecar.envVar" (list "CERT_SIDECAR_LOG_LEVEL" $v.logLevel) }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Fields every form of the container shares. */}}
{{- define "cert-sidecar.common" -}}
{{- $v := fromYaml (include "cert-sidecar.settings" .) -}}
image: {{ include "cert-sidecar.image" . | quote }}
imagePullPolicy: {{ $v.image.pullPolicy }}
env:
  {{- include "cert-sidecar.env" . | trim | nindent 2 }}
volumeMounts:
  - name: {{ $v.volume.name }}
    mountPath: {{ $v.files.mountPath }}
  {{- if eq ($v.issuer | default "lambda") "kubernetes" }}
  - name: {{ $v.volume.name }}-trust
    mountPath: {{ $v.kubernetes.trustBundle.mountPath }}
    readOnly: true
  {{- end }}
resources:
  {{- toYaml $v.resources | nindent 2 }}
securityContext:
  {{- toYaml $v.securityContext | nindent 2 }}
{{- end -}}

{{/* Health probes of the long-running container (need the health server). */}}
{{- define "cert-sidecar.probes" -}}
{{- $v := fromYaml (include "cert-sidecar.settings" .) -}}
{{- if $v.health.port }}
ports:
  - name: cert-health
    containerPort: {{ $v.health.port }}
    protocol: TCP
readinessProbe:
  httpGet: {path: /readyz, port: cert-health}
  {{- toYaml $v.probes.readiness | nindent 2 }}
livenessProbe:
  httpGet: {path: /healthz, port: cert-health}
  {{- toYaml $v.probes.liveness | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The renewing container of the classic form: one list item for `containers:`. */}}
{{- define "cert-sidecar.container" -}}
{{- $v := fromYaml (include "cert-sidecar.settings" .) -}}
- name: {{ $v.name }}
  args: [run]
  {{- include "cert-sidecar.common" . | nindent 2 }}
  {{- with (include "cert-sidecar.probes" . | trim) }}
  {{- . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* The native sidecar: an init container that keeps running (restartPolicy: Always). The
kubelet starts the app only once a valid certificate matching its key is in the volume:
- lambda issuer: its postStart hook `cert-sidecar wait` returns then, and the kubelet starts the
  app at once, not at the next tick of a startup probe;
- kubernetes issuer: a startupProbe `cert-sidecar check`. Its first set needs the trust bundle
  ConfigMap, which the operator creates when it first signs for the namespace, and the kubelet
  fills a ConfigMap volume only in a sync of the Pod, which a postStart hook holds up. */}}
{{- define "cert-sidecar.nativeContainer" -}}
{{- $v := fromYaml (include "cert-sidecar.settings" .) -}}
- name: {{ $v.name }}
  args: [run]
  restartPolicy: Always
  {{- include "cert-sidecar.common" . | nindent 2 }}
  {{- if eq ($v.issuer | default "lambda") "kubernetes" }}
  startupProbe:
    exec:
      command: [cert-sidecar, check]
    {{- toYaml $v.probes.startup | nindent 4 }}
  {{- else }}
  lifecycle:
    postStart:
      exec:
        command: [cert-sidecar, wait]
  {{- end }}
  {{- with (include "cert-sidecar.probes" . | trim) }}
  {{- . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* The one-shot init container: issues if needed and exits, before any app container. */}}
{{- define "cert-sidecar.onceContainer" -}}
{{- $v := fromYaml (include "cert-sidecar.settings" .) -}}
- name: {{ $v.name }}-init
  args: [once]
  {{- include "cert-sidecar.common" . | nindent 2 }}
{{- end -}}

{{/* List items for the pod's `initContainers:`, by form. */}}
{{- define "cert-sidecar.initContainers" -}}
{{- $v := fromYaml (include "cert-sidecar.settings" .) -}}
{{- if eq $v.form "native" -}}
{{ include "cert-sidecar.nativeContainer" . }}
{{- else -}}
{{ include "cert-sidecar.onceContainer" . }}
{{- end -}}
{{- end -}}

{{/* List items for the pod's `containers:` (only the classic form adds one). */}}
{{- define "cert-sidecar.containers" -}}
{{- $v := fromYaml (include "cert-sidecar.settings" .) -}}
{{- if eq $v.form "classic" -}}
{{ include "cert-sidecar.container" . }}
{{- end -}}
{{- end -}}

{{/* The shared volume: one list item for `volumes:`. In memory by default. */}}
{{- define "cert-sidecar.volumes" -}}
{{- $v := fromYaml (include "cert-sidecar.settings" .) -}}
{{- $emptyDir := dict -}}
{{- with $v.volume.medium }}{{ $_ := set $emptyDir "medium" . }}{{ end -}}
{{- with $v.volume.sizeLimit }}{{ $_ := set $emptyDir "sizeLimit" . }}{{ end }}
- name: {{ $v.volume.name }}
  emptyDir: {{ toJson $emptyDir }}
{{- if eq ($v.issuer | default "lambda") "kubernetes" }}
- name: {{ $v.volume.name }}-trust
  configMap:
    name: {{ $v.kubernetes.trustBundle.configMap }}
    # The operator writes it when it first signs for this namespace; kubelet then projects it.
    optional: true
{{- end }}
{{- end -}}

{{/* The app container's read-only mount of the credentials: one list item. */}}
{{- define "cert-sidecar.volumeMount" -}}
{{- $v := fromYaml (include "cert-sidecar.settings" .) -}}
- name: {{ $v.volume.name }}
  mountPath: {{ $v.files.mountPath }}
  readOnly: true
{{- end -}}

{{/* The RBAC of the kubernetes issuer, exactly: create, get and watch on
CertificateSigningRequests, for the pod's ServiceAccount. Nothing when the issuer is lambda.
Takes (dict "root" . "serviceAccountName" NAME):

  {{- include "cert-sidecar.rbac" (dict "root" . "serviceAccountName" (include "my-app.serviceAccountName" .)) }}
*/}}
{{- define "cert-sidecar.rbac" -}}
{{- $root := .root -}}
{{- $v := fromYaml (include "cert-sidecar.settings" $root) -}}
{{- if eq ($v.issuer | default "lambda") "kubernetes" -}}
{{- $name := printf "%s-%s-cert-sidecar" $root.Release.Namespace $root.Release.Name | trunc 63 | trimSuffix "-" -}}
---
# cert-sidecar's kubernetes issuer: it creates its CSR, reads it, and watches it for the
# certificate. It cannot list, approve, sign or delete CSRs, nor read anything else.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ $name }}
  labels:
    app.kubernetes.io/name: cert-sidecar
    app.kubernetes.io/instance: {{ $root.Release.Name }}
    app.kubernetes.io/managed-by: {{ $root.Release.Service }}
rules:
  - apiGroups: [certificates.k8s.io]
    resources: [certificatesigningrequests]
    verbs: [create, get, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ $name }}
  labels:
    app.kubernetes.io/name: cert-sidecar
    app.kubernetes.io/instance: {{ $root.Release.Name }}
    app.kubernetes.io/managed-by: {{ $root.Release.Service }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: {{ .serviceAccountName }}
    namespace: {{ $root.Release.Namespace }}
{{- end -}}
{{- end -}}

{{/* "true" when the reload action needs the pod's processes to see each other. */}}
{{- define "cert-sidecar.shareProcessNamespace" -}}
{{- $v := fromYaml (include "cert-sidecar.settings" .) -}}
{{- if $v.reload.processName }}true{{ else }}false{{ end -}}
{{- end -}}
