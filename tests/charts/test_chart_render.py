"""helm lint and helm template over tables of values for the three charts; the schemas refuse bad
values naming them; the sidecar's rendered environment is read back by the sidecar's own
settings parser, so the chart and docs/sidecar.md cannot drift apart."""

from __future__ import annotations

import pytest
from chart_tools import EXAMPLE_APP, OPERATOR, Helm, env_of, find, kinds, pod_spec

from sidecar.settings import OPTIONS, load

PROD_ARN = "arn:aws:lambda:eu-west-2:222222222222:function:serverless-tls-cert-prod"
IRSA_ROLE = "arn:aws:iam::111111111111:role/clientcert-operator"
RULE_COUNT = 10  # rows of docs/operator.md's RBAC table


@pytest.fixture(scope="module")
def helm(tmp_path_factory) -> Helm:
    return Helm.prepare(tmp_path_factory.mktemp("charts"))


def operator_container(docs, name="rel-clientcert-operator"):
    return pod_spec(docs, name)["containers"][0]


def check_defaults(docs):
    assert kinds(docs) == [
        "ClusterKopfPeering", "ClusterRole", "ClusterRoleBinding", "Deployment", "LambdaCA",
        "ServiceAccount",
    ]  # fmt: skip
    deployment = find(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = operator_container(docs)
    assert container["command"] == ["clientcert-operator"]
    assert "--peering=clientcert-operator" in container["args"]
    assert "--priority=100" in container["args"]
    assert env_of(container)["CLIENTCERT_DEFAULT_ISSUER"] == "default"
    assert env_of(container)["CLIENTCERT_METRICS_PORT"] == "9090"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    assert find(docs, "LambdaCA", "default")["spec"] == {"functionName": "serverless-tls-cert-dev"}
    assert len(find(docs, "ClusterRole")["rules"]) == RULE_COUNT
    binding = find(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rel-clientcert-operator", "namespace": "apps"}
    ]
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "clientcert-operator"
        assert labels["app.kubernetes.io/instance"] == "rel"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == "0.1.0"


def check_standalone(docs):
    container = operator_container(docs)
    assert "--standalone" in container["args"]
    assert not any(a.startswith("--peering") for a in container["args"])
    assert "ClusterKopfPeering" not in kinds(docs)
    rules = find(docs, "ClusterRole")["rules"]
    assert len(rules) == RULE_COUNT - 1
    assert all("kopf.dev" not in rule["apiGroups"] for rule in rules)


def check_standby(docs):
    active = operator_container(docs)
    standby = operator_container(docs, "rel-clientcert-operator-standby")
    assert "--priority=100" in active["args"] and "--priority=50" in standby["args"]
    selectors = [
        find(docs, "Deployment", n)["spec"]["selector"]["matchLabels"][
            "app.kubernetes.io/component"
        ]
        for n in ("rel-clientcert-operator", "rel-clientcert-operator-standby")
    ]
    assert selectors == ["operator", "standby"]  # the two Deployments never adopt each other's pods


def check_metrics_objects(docs):
    service = find(docs, "Service", "rel-clientcert-operator-metrics")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    monitor = find(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "metrics"
    assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "metrics"


def check_metrics_off(docs):
    container = operator_container(docs)
    assert env_of(container)["CLIENTCERT_METRICS_PORT"] == "0"
    assert [p["name"] for p in container["ports"]] == ["liveness"]
    assert "Service" not in kinds(docs)


def check_existing_issuer(docs):
    assert "LambdaCA" not in kinds(docs)
    assert env_of(operator_container(docs))["CLIENTCERT_DEFAULT_ISSUER"] == "prod"


def check_no_default(docs):
    assert "LambdaCA" not in kinds(docs)
    assert "CLIENTCERT_DEFAULT_ISSUER" not in env_of(operator_container(docs))


def check_irsa(docs):
    account = find(docs, "ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": IRSA_ROLE}


def check_rbac_elsewhere(docs):
    assert kinds(docs) == ["ClusterKopfPeering", "Deployment", "LambdaCA"]
    assert pod_spec(docs)["serviceAccountName"] == "managed-sa"


def check_cross_account(docs):
    spec = find(docs, "LambdaCA", "prod")["spec"]
    assert spec == {
        "functionName": PROD_ARN,
        "roleArn": "arn:aws:iam::222222222222:role/ca-invoker",
    }
    env = env_of(operator_container(docs))
    assert env["CLIENTCERT_MAX_CONCURRENT_ISSUANCES"] == "4"
    assert env["HTTPS_PROXY"] == "http://proxy.internal:3128"


OPERATOR_CASES = {
    "defaults render one operator, its RBAC, the default LambdaCA and the peering": (
        {},
        check_defaults,
    ),
    "peering off runs standalone and drops the peering rule": (
        {"peering": {"enabled": False}},
        check_standalone,
    ),
    "a standby gets a second Deployment with a lower peering priority": (
        {"standby": {"enabled": True}},
        check_standby,
    ),
    "metrics Service and ServiceMonitor when asked": (
        {
            "metrics": {
                "service": {"enabled": True},
                "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
            }
        },
        check_metrics_objects,
    ),
    "metrics off turns the endpoint off": ({"metrics": {"enabled": False}}, check_metrics_off),
    "an administrator's LambdaCA as the default creates none": (
        {"defaultCA": {"create": False, "name": "prod"}},
        check_existing_issuer,
    ),
    "no default CA at all": ({"defaultCA": {"create": False, "name": ""}}, check_no_default),
    "IRSA role on the ServiceAccount": (
        {"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": IRSA_ROLE}}},
        check_irsa,
    ),
    "RBAC and ServiceAccount managed elsewhere": (
        {"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "managed-sa"}},
        check_rbac_elsewhere,
    ),
    "a cross-account CA by function ARN with a role to assume": (
        {
            "defaultCA": {
                "name": "prod",
                "functionName": PROD_ARN,
                "roleArn": "arn:aws:iam::222222222222:role/ca-invoker",
            },
            "settings": {"maxConcurrentIssuances": 4},
            "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"}],
        },
        check_cross_account,
    ),
}


@pytest.mark.parametrize(
    ("values", "check"), list(OPERATOR_CASES.values()), ids=list(OPERATOR_CASES)
)
def test_operator_chart_lints_and_renders(helm, values, check):
    helm.lint(OPERATOR, values)
    check(helm.render(OPERATOR, values))


def test_operator_pod_is_hardened(helm):
    spec = pod_spec(helm.render(OPERATOR, {}))
    assert spec["securityContext"]["runAsNonRoot"] is True
    context = spec["containers"][0]["securityContext"]
    assert context == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spec["containers"][0]["resources"]["limits"]["memory"]


def test_operator_notes_tell_the_user_what_to_do_next(helm):
    notes = helm.run("install", "rel", helm.chart(OPERATOR), "--dry-run=client", "-n", "ops").stdout
    assert "kubectl -n ops rollout status deploy/rel-clientcert-operator" in notes
    # No AWS identity configured yet: the notes say how to give one.
    assert "--set serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=" in notes
    assert "kind: ClientCertificate" in notes
    assert "kubectl apply --server-side -f <chart>/crds/" in notes


def sidecar_containers(docs):
    spec = pod_spec(docs)
    return spec["initContainers"], spec["containers"]


def check_native(docs):
    init, containers = sidecar_containers(docs)
    (sidecar,) = init
    assert sidecar["restartPolicy"] == "Always" and sidecar["args"] == ["run"]
    assert sidecar["lifecycle"]["postStart"]["exec"]["command"] == ["cert-sidecar", "wait"]
    assert "startupProbe" not in sidecar  # the hook gates the app; a probe would add its period
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert [c["name"] for c in containers] == ["app"]
    volume = find(docs, "Deployment")["spec"]["template"]["spec"]["volumes"][0]
    assert volume == {"name": "certs", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}
    app = containers[0]
    assert app["volumeMounts"] == [{"name": "certs", "mountPath": "/certs", "readOnly": True}]
    assert app["readinessProbe"]["exec"]["command"][:2] == ["cert-sidecar", "check"]


def check_classic(docs):
    init, containers = sidecar_containers(docs)
    (once,) = init
    assert once["args"] == ["once"] and "restartPolicy" not in once
    assert [c["name"] for c in containers] == ["app", "cert-sidecar"]
    assert containers[1]["args"] == ["run"] and "startupProbe" not in containers[1]


def check_init_only(docs):
    init, containers = sidecar_containers(docs)
    assert [(c["name"], c["args"]) for c in init] == [("cert-sidecar-init", ["once"])]
    assert [c["name"] for c in containers] == ["app"]


def check_process_reload(docs):
    spec = pod_spec(docs)
    assert spec["shareProcessNamespace"] is True
    assert env_of(spec["initContainers"][0])["CERT_SIDECAR_RELOAD_PROCESS_NAME"] == "nginx"


def check_health_off(docs):
    (sidecar,) = sidecar_containers(docs)[0]
    assert env_of(sidecar)["CERT_SIDECAR_LISTEN"] == "off"
    assert "readinessProbe" not in sidecar and "ports" not in sidecar
    assert sidecar["lifecycle"]["postStart"]  # wait reads the files: it needs no server


def check_node_disk(docs):
    volume = pod_spec(docs)["volumes"][0]
    assert volume == {"name": "creds", "emptyDir": {}}
    (sidecar,) = sidecar_containers(docs)[0]
    assert sidecar["volumeMounts"] == [{"name": "creds", "mountPath": "/var/run/tls"}]


EXAMPLE_CASES = {
    "native sidecar by default, app gated on check": ({}, check_native),
    "classic form adds a once init container and a renewing container": (
        {"cert-sidecar": {"form": "classic"}},
        check_classic,
    ),
    "init form only issues before the app starts": (
        {"cert-sidecar": {"form": "init"}},
        check_init_only,
    ),
    "reload by process name shares the process namespace": (
        {"cert-sidecar": {"reload": {"processName": "nginx"}}},
        check_process_reload,
    ),
    "health server off drops the HTTP probes": (
        {"cert-sidecar": {"health": {"port": 0}}},
        check_health_off,
    ),
    "volume on node storage under another name and path": (
        {
            "cert-sidecar": {
                "volume": {"name": "creds", "medium": "", "sizeLimit": None},
                "files": {"mountPath": "/var/run/tls"},
            }
        },
        check_node_disk,
    ),
}


@pytest.mark.parametrize(("values", "check"), list(EXAMPLE_CASES.values()), ids=list(EXAMPLE_CASES))
def test_example_app_chart_lints_and_renders(helm, values, check):
    helm.lint(EXAMPLE_APP, values)
    check(helm.render(EXAMPLE_APP, values))


EVERY_SETTING = {
    "ca": {
        "function": PROD_ARN,
        "region": "eu-west-2",
        "endpointUrl": "https://vpce-0abc.lambda.eu-west-2.vpce.amazonaws.com",
        "roleArn": "arn:aws:iam::222222222222:role/ca-invoker",
        "profile": "ca",
    },
    "certificate": {
        "commonName": "payments.example.com",
        "sans": [
            "payments.example.com",
            {"type": "IP_ADDRESS", "value": "10.0.0.7"},
            {"type": "URL", "value": "https://example.com/payments"},
        ],
        "organization": "Example Ltd",
        "organizationalUnit": "Payments",
        "locality": "London",
        "state": "England",
        "country": "GB",
        "emailAddress": "payments@example.com",
        "lifetimeDays": 7,
        "purposes": ["client_auth", "server_auth"],
        "extendedKeyUsages": ["CODE_SIGNING"],
        "keyAlgorithm": "rsa-3072",
    },
    "files": {
        "keyFile": "client.key",
        "certFile": "client.crt",
        "caFile": "bundle.crt",
        "serverlessCaNames": True,
        "combinedFile": "combined.pem",
        "uid": 1000,
        "gid": 2000,
        "keyMode": "0640",
        "fileMode": "0640",
        "dirMode": "0750",
    },
    "renewal": {
        "point": "70%",
        "jitter": 0.2,
        "backoffBase": "2s",
        "backoffCap": "10m",
        "minRenewalInterval": "1m",
        "onceTimeout": "2m",
    },
    "reload": {
        "signal": "USR1",
        "pidFile": "/run/app/app.pid",
        "processName": "app",
        "command": "/bin/app reload --quick",
        "url": "http://127.0.0.1:9000/reload",
    },
    "health": {"port": 9443},
    "logLevel": "debug",
    # files.uid differs from runAsUser: the sidecar needs CHOWN to give its files away.
    "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}},
}


# Settings of the kubernetes issuer only; the in-cluster ones (API URL, token, CA) are left to the
# sidecar's defaults, which are where a pod finds them.
KUBERNETES_ISSUER_OPTIONS = (
    "issuer", "signer_name", "kube_api_url", "kube_token_file", "kube_ca_file",
    "trust_bundle_file", "csr_timeout",
)  # fmt: skip


def test_the_kubernetes_issuer_gets_its_settings_no_aws_and_the_trust_bundle_volume(helm):
    values = {
        "issuer": "kubernetes",
        "kubernetes": {"signerName": "clientcerts.dev/prod", "csrTimeout": "90s"},
        "ca": EVERY_SETTING["ca"],
        "certificate": {"commonName": "payments.example.com"},
    }
    docs = helm.render(EXAMPLE_APP, {"cert-sidecar": values})
    (sidecar,) = sidecar_containers(docs)[0]
    env = env_of(sidecar)
    assert not [name for name in env if "AWS" in name or name.endswith(("FUNCTION", "ROLE_ARN"))]
    settings = load(sidecar["args"], {**env, "KUBERNETES_SERVICE_HOST": "10.0.0.1",
                                      "KUBERNETES_SERVICE_PORT": "443"})  # fmt: skip
    assert settings.issuer == "kubernetes" and settings.kube is not None
    assert settings.kube.signer_name == "clientcerts.dev/prod"
    assert settings.kube.csr_timeout == 90
    assert str(settings.kube.trust_bundle_file) == "/var/run/clientcert-ca-bundle/prod.crt"
    assert settings.kube.api_url == "https://10.0.0.1:443"
    mounts = {m["mountPath"]: m for m in sidecar["volumeMounts"]}
    assert mounts["/var/run/clientcert-ca-bundle"]["readOnly"] is True
    # Its first set needs the bundle the kubelet mounts only in a Pod sync, which a postStart
    # hook would hold up: a startup probe gates the app instead (a Pod test proves the need).
    assert sidecar["startupProbe"]["exec"]["command"] == ["cert-sidecar", "check"]
    assert "lifecycle" not in sidecar
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["certs-trust"]["configMap"] == {"name": "clientcert-ca-bundle", "optional": True}
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert role["rules"] == [
        {
            "apiGroups": ["certificates.k8s.io"],
            "resources": ["certificatesigningrequests"],
            "verbs": ["create", "get", "watch"],
        }
    ]
    (binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "apps"}]


def test_the_lambda_issuer_gets_no_rbac_and_no_trust_bundle_volume(helm):
    docs = helm.render(EXAMPLE_APP, {})
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    assert [v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]] == ["certs"]


def test_every_sidecar_setting_reaches_the_sidecar_as_its_documented_variable(helm):
    docs = helm.render(EXAMPLE_APP, {"cert-sidecar": EVERY_SETTING})
    (sidecar,) = sidecar_containers(docs)[0]
    env = env_of(sidecar)
    missing = [
        o.variables[0]
        for o in OPTIONS
        if o.name not in ("mode", *KUBERNETES_ISSUER_OPTIONS) and o.variables[0] not in env
    ]
    assert missing == []
    settings = load(sidecar["args"], env)  # the sidecar's own parser: every value must be valid
    assert settings.mode == "run"
    assert settings.ca.function == EVERY_SETTING["ca"]["function"]
    assert settings.ca.region == "eu-west-2" and settings.ca.profile == "ca"
    assert settings.ca.role_arn == EVERY_SETTING["ca"]["roleArn"]
    assert settings.ca.endpoint_url == EVERY_SETTING["ca"]["endpointUrl"]
    request = settings.request
    assert request.common_name == "payments.example.com"
    assert [(s.type, s.value) for s in request.sans] == [
        ("DNS_NAME", "payments.example.com"),
        ("IP_ADDRESS", "10.0.0.7"),
        ("URL", "https://example.com/payments"),
    ]
    assert request.subject.organization == "Example Ltd" and request.subject.country == "GB"
    assert request.lifetime_days == 7
    assert request.purposes == ("client_auth", "server_auth")
    assert request.extended_key_usages == ("CODE_SIGNING",)
    assert str(settings.key_spec) == "rsa-3072"
    assert str(settings.output_dir) == "/certs"
    names = settings.names
    assert (names.key, names.certificate, names.ca_bundle) == (
        "client.key",
        "client.crt",
        "bundle.crt",
    )
    assert names.compat_key == "client-key.pem" and names.combined == "combined.pem"
    own = settings.ownership
    assert (own.uid, own.gid, own.private_mode, own.file_mode, own.dir_mode) == (
        1000, 2000, 0o640, 0o640, 0o750,
    )  # fmt: skip
    assert settings.renewal_point.fraction == pytest.approx(0.7)
    assert settings.jitter == 0.2 and settings.backoff_base == 2 and settings.backoff_cap == 600
    assert settings.min_renewal_interval.total_seconds() == 60 and settings.once_timeout == 120
    reload = settings.reload
    assert reload.signal == 10 and str(reload.pid_file) == "/run/app/app.pid"
    assert reload.process_name == "app" and reload.command == ("/bin/app", "reload", "--quick")
    assert reload.url == "http://127.0.0.1:9000/reload"
    assert settings.listen == ("0.0.0.0", 9443) and settings.log_level == "DEBUG"


@pytest.mark.parametrize("form", ["native", "classic", "init"])
def test_defaults_give_a_hardened_sidecar_the_sidecar_accepts(helm, form):
    docs = helm.render(EXAMPLE_APP, {"cert-sidecar": {"form": form}})
    init, containers = sidecar_containers(docs)
    for sidecar in [*init, *containers[1:]]:
        settings = load(sidecar["args"], env_of(sidecar))
        assert settings.request.common_name == "example-app.default.svc"
        context = sidecar["securityContext"]
        assert context["runAsNonRoot"] and context["readOnlyRootFilesystem"]
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["allowPrivilegeEscalation"] is False
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}


REFUSALS = {
    "two active operator replicas": (OPERATOR, {"replicaCount": 2}, "/replicaCount"),
    "a default CA function that is not a name or ARN": (
        OPERATOR,
        {"defaultCA": {"functionName": "bad/name"}},
        "/defaultCA/functionName",
    ),
    "an operator allowed to run as root": (
        OPERATOR,
        {"securityContext": {"runAsNonRoot": False}},
        "/securityContext/runAsNonRoot",
    ),
    "a misspelled top-level key": (OPERATOR, {"metricz": {"enabled": True}}, "'metricz'"),
    "a sidecar lifetime over the 36500-day ceiling": (
        EXAMPLE_APP,
        {"cert-sidecar": {"certificate": {"lifetimeDays": 36501}}},
        "/certificate/lifetimeDays",
    ),
    "an unknown sidecar form": (EXAMPLE_APP, {"cert-sidecar": {"form": "sidecar"}}, "/form"),
    "an unknown key algorithm": (
        EXAMPLE_APP,
        {"cert-sidecar": {"certificate": {"keyAlgorithm": "dsa"}}},
        "/certificate/keyAlgorithm",
    ),
    "a private key readable by every user": (
        EXAMPLE_APP,
        {"cert-sidecar": {"files": {"keyMode": "0644"}}},
        "/files/keyMode",
    ),
    "a private key its owner cannot read": (
        EXAMPLE_APP,
        {"cert-sidecar": {"files": {"keyMode": "0000"}}},
        "/files/keyMode",
    ),
    "certificate files their owner cannot read": (
        EXAMPLE_APP,
        {"cert-sidecar": {"files": {"fileMode": "0244"}}},
        "/files/fileMode",
    ),
    "version folders their owner cannot enter": (
        EXAMPLE_APP,
        {"cert-sidecar": {"files": {"dirMode": "0644"}}},
        "/files/dirMode",
    ),
}

# Settings the sidecar refuses at start (it would crash-loop): the render refuses them first.
# helm lint runs templates in lint mode, where `fail` is only logged: template is the gate.
SIDECAR_REFUSALS = {
    "files given to another uid without CHOWN": (
        {"files": {"uid": 1000}},
        "cert-sidecar.files.uid: 1000 is not securityContext.runAsUser (65532) and the sidecar "
        "lacks the CHOWN capability",
    ),
    "a key the sidecar could not read back": (
        {
            "files": {"uid": 1000, "keyMode": "0600"},
            "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}},
        },
        "cert-sidecar.files.keyMode: 0600 on files owned by uid 1000 leaves the sidecar",
    ),
}


@pytest.mark.parametrize(
    ("values", "said"), list(SIDECAR_REFUSALS.values()), ids=list(SIDECAR_REFUSALS)
)
def test_settings_the_sidecar_would_refuse_at_start_stop_the_render(helm, values, said):
    base = {"cert-sidecar": {"certificate": {"commonName": "app.example.com"}, **values}}
    done = helm.template(EXAMPLE_APP, base, check=False)
    assert done.returncode != 0 and said in done.stderr, done.stderr


def test_files_of_the_sidecars_own_uid_need_no_chown(helm):
    values = {"cert-sidecar": {"files": {"uid": 65532, "gid": 65532}}}
    assert helm.template(EXAMPLE_APP, values, check=False).returncode == 0


@pytest.mark.parametrize(("chart", "values", "named"), list(REFUSALS.values()), ids=list(REFUSALS))
def test_bad_value_is_refused_by_lint_and_template_naming_it(helm, chart, values, named):
    lint = helm.lint(chart, values, check=False)
    assert lint.returncode != 0 and named in lint.stdout + lint.stderr
    rendered = helm.template(chart, values, check=False)
    assert rendered.returncode != 0 and named in rendered.stderr


def test_a_missing_common_name_stops_the_render_naming_the_value(helm):
    # helm lint runs templates in lint mode, where `fail` is only logged: template is the gate.
    done = helm.template(
        EXAMPLE_APP, {"cert-sidecar": {"certificate": {"commonName": ""}}}, check=False
    )
    assert done.returncode != 0
    assert "cert-sidecar.certificate.commonName: is required" in done.stderr
