"""Names of the operator's API and of what it writes: one place, so the CRDs, the handlers, the
RBAC and the tests agree."""

from __future__ import annotations

GROUP = "clientcerts.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

CERT_KIND = "ClientCertificate"
CERT_PLURAL = "clientcertificates"
CA_KIND = "LambdaCA"
CA_PLURAL = "lambdacas"

# On the Secret: which ClientCertificate owns it (label, so one watch with a selector sees only
# ours), and the facts the policy compares against the spec (annotations).
LABEL_CERTIFICATE = f"{GROUP}/certificate-name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "clientcert-operator"
ANNOTATION_SPEC_HASH = f"{GROUP}/spec-hash"
ANNOTATION_ISSUER = f"{GROUP}/issuer"
ANNOTATION_SERIAL = f"{GROUP}/serial-number"
ANNOTATION_ISSUED_AT = f"{GROUP}/issued-at"
ANNOTATION_CERTIFICATE = f"{GROUP}/certificate-name"

SECRET_TYPE = "kubernetes.io/tls"
KEY_FILE, CERT_FILE, CA_FILE = "tls.key", "tls.crt", "ca.crt"

CONDITION_READY = "Ready"
CONDITION_ISSUING = "Issuing"
