"""The signer's vocabulary: signer names, condition types and reasons, and the names of what it
writes. One place, so the operator, the sidecar's docs and the tests agree.

Reasons (CamelCase, used verbatim in CSR conditions and events):

- ``ApprovedByPolicy`` (Approved): a ClientCertificatePolicy allows exactly this request.
- ``NotAServiceAccount`` (Denied): the requester is a user, not a ServiceAccount.
- ``NoMatchingPolicy`` (Denied): no policy for this signer names the requester.
- ``PolicyViolation`` (Denied): policies name the requester, but the request asks for more than
  they allow (the message says which policy and which field).
- ``InvalidCSR`` (Denied): the request itself is unusable (no common name, a key type the project
  does not issue for).
- ``ManualApprovalRequired`` (``clientcerts.dev/AwaitingApproval``): a policy allows the request
  but asks a person to approve it; the CSR stays pending.
- ``CAInvoked`` / ``CAUnavailable`` / ``Issued`` (``clientcerts.dev/Signing``): the marker written
  before each CA call, its transient failures, and the signed outcome.
- ``CARefused`` (Failed): the CA's refusal, its message verbatim.
- ``InvalidRequest`` (Failed): an approved CSR the CA cannot be asked for (the field is named).
- ``InvalidResponse`` (Failed): the CA answered with a certificate that is not for the CSR's key or
  does not chain.
"""

from __future__ import annotations

SIGNER_DOMAIN = "clientcerts.dev"
CSR_API = "certificates.k8s.io/v1"

POLICY_KIND = "ClientCertificatePolicy"
POLICY_PLURAL = "clientcertificatepolicies"

# Built-in CSR condition types, and the two this signer adds (custom types are allowed and may be
# written only by someone who may `sign` for the CSR's signer name).
APPROVED = "Approved"
DENIED = "Denied"
FAILED = "Failed"
SIGNING = f"{SIGNER_DOMAIN}/Signing"
AWAITING_APPROVAL = f"{SIGNER_DOMAIN}/AwaitingApproval"

APPROVED_BY_POLICY = "ApprovedByPolicy"
NOT_A_SERVICE_ACCOUNT = "NotAServiceAccount"
NO_MATCHING_POLICY = "NoMatchingPolicy"
POLICY_VIOLATION = "PolicyViolation"
INVALID_CSR = "InvalidCSR"
MANUAL_APPROVAL_REQUIRED = "ManualApprovalRequired"
CA_INVOKED = "CAInvoked"
CA_UNAVAILABLE = "CAUnavailable"
ISSUED = "Issued"
CA_REFUSED = "CARefused"
INVALID_REQUEST = "InvalidRequest"
INVALID_RESPONSE = "InvalidResponse"

# The trust bundle: one ConfigMap per namespace that uses a signer, one key per LambdaCA, so RBAC
# can name it; and, where the API serves them, one ClusterTrustBundle per signer.
TRUST_CONFIGMAP = "clientcert-ca-bundle"
LABEL_TRUST_BUNDLE = f"{SIGNER_DOMAIN}/trust-bundle"
TRUST_BUNDLE_SUFFIX = "bundle"


def signer_name(lambdaca: str) -> str:
    """The signer name a LambdaCA serves."""
    return f"{SIGNER_DOMAIN}/{lambdaca}"


def lambdaca_of(signer: str) -> str | None:
    """The LambdaCA a signer name belongs to, or None for any other signer."""
    domain, sep, name = signer.partition("/")
    return name if sep and domain == SIGNER_DOMAIN and name and "/" not in name else None


def trust_key(lambdaca: str) -> str:
    """The ConfigMap key holding a LambdaCA's bundle (issuing then root CA, PEM)."""
    return f"{lambdaca}.crt"


def cluster_trust_bundle_name(lambdaca: str) -> str:
    """ClusterTrustBundles of a signer must be named ``<signer with : for />:<name>``."""
    return f"{SIGNER_DOMAIN}:{lambdaca}:{TRUST_BUNDLE_SUFFIX}"
