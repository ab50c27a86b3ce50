{{- define "clientcert-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 55 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 55 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "clientcert-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "clientcert-operator.labels" -}}
{{ include "clientcert-operator.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: lambda-client-certs
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "clientcert-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "clientcert-operator.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "clientcert-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The operator's pod template; `priority` and `component` are given by the caller. */}}
{{- define "clientcert-operator.podTemplate" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
metadata:
  labels:
    {{- include "clientcert-operator.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "clientcert-operator.serviceAccountName" $root }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
  containers:
    - name: operator
      image: {{ include "clientcert-operator.image" $root | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command: [clientcert-operator]
      args:
        - --liveness=http://0.0.0.0:{{ $v.liveness.port }}/healthz
        - --log-level={{ $v.logLevel }}
        {{- if $v.peering.enabled }}
        - --peering={{ $v.peering.name }}
        - --priority={{ .priority }}
        {{- else }}
        - --standalone
        {{- end }}
      env:
        {{- with $v.defaultCA.name }}
        - name: CLIENTCERT_DEFAULT_ISSUER
          value: {{ . | quote }}
        {{- end }}
        {{- if $v.signer.enabled }}
        - name: CLIENTCERT_SIGNER
          value: "true"
        {{- end }}
        - name: CLIENTCERT_MAX_CONCURRENT_ISSUANCES
          value: {{ $v.settings.maxConcurrentIssuances | quote }}
        - name: CLIENTCERT_RENEWAL_JITTER
          value: {{ $v.settings.renewalJitter | quote }}
        - name: CLIENTCERT_RETRY_BASE_SECONDS
          value: {{ $v.settings.retryBaseSeconds | quote }}
        - name: CLIENTCERT_RETRY_CAP_SECONDS
          value: {{ $v.settings.retryCapSeconds | quote }}
        - name: CLIENTCERT_REFUSED_RETRY_SECONDS
          value: {{ $v.settings.refusedRetrySeconds | quote }}
        - name: CLIENTCERT_METRICS_PORT
          value: {{ ternary $v.metrics.port 0 $v.metrics.enabled | quote }}
        - name: CLIENTCERT_SHUTDOWN_SECONDS
          value: {{ $v.settings.shutdownSeconds | quote }}
        {{- if $v.stash.enabled }}
        - name: CLIENTCERT_STASH_DIR
          value: /var/run/clientcert-operator/stash
        {{- end }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: liveness
          containerPort: {{ $v.liveness.port }}
          protocol: TCP
        {{- if $v.metrics.enabled }}
        - name: metrics
          containerPort: {{ $v.metrics.port }}
          protocol: TCP
        {{- end }}
      # The operator's own liveness endpoint (a thread of its own): 503 once part of the operator
      # died, its event loop stalled or a stop overran its budget; the process then exits too.
      startupProbe:
        httpGet: {path: /healthz, port: liveness}
        {{- toYaml $v.probes.startup | nindent 8 }}
      livenessProbe:
        httpGet: {path: /healthz, port: liveness}
        {{- toYaml $v.probes.liveness | nindent 8 }}
      resources:
        {{- toYaml $v.resources | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if $v.stash.enabled }}
        - name: stash
          mountPath: /var/run/clientcert-operator/stash
        {{- end }}
  volumes:
    # The root filesystem is read-only; libraries that want a temp file get this instead.
    - name: tmp
      emptyDir: {sizeLimit: 16Mi}
    {{- if $v.stash.enabled }}
    # Issued certificates not yet written to their Secret: RAM only, this Pod only.
    - name: stash
      emptyDir: {medium: Memory, sizeLimit: {{ $v.stash.sizeLimit }}}
    {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
