"""The closed vocabulary of reasons, used verbatim in conditions, events, metrics and logs.

Why a certificate must be (re-)issued, checked in this order (the first one found wins):

- ``DoesNotExist``: no Secret, and this ClientCertificate never had a certificate.
- ``SecretMissing``: the Secret was deleted after a certificate had been issued.
- ``SecretNotOwned``: a Secret of that name exists but another object (or nobody) controls it.
- ``MissingData``: the Secret lacks ``tls.crt``, ``tls.key`` or ``ca.crt``, or they do not parse.
- ``InvalidKeyPair``: ``tls.key`` is not the key of ``tls.crt`` (tampered or half-written).
- ``InvalidChain``: ``tls.crt`` does not verify against ``ca.crt``.
- ``SpecChanged``: the issuance-relevant spec differs from the one the Secret was issued for.
- ``Expired``: the certificate's notAfter has passed.
- ``Renewing``: the renewal time (renewal point with jitter) has been reached.

Outcomes:

- ``Ready``: the Secret holds a valid certificate for the current spec.
- ``Issued`` / ``Renewed`` / ``Reissued``: an issuance succeeded (first one / at the renewal point
  or expiry / for any other trigger).
- ``Refused``: the CA answered with an error; retried after a long backoff or a spec change.
- ``Failed``: the CA could not be reached, throttled or crashed; retried with exponential backoff.
- ``InvalidSpec``: the spec cannot be turned into a request (admission normally stops this).
- ``IssuerNotFound``: ``issuerRef`` names no LambdaCA, or none is named and there is no default.
"""

from __future__ import annotations

DOES_NOT_EXIST = "DoesNotExist"
SECRET_MISSING = "SecretMissing"
SECRET_NOT_OWNED = "SecretNotOwned"
MISSING_DATA = "MissingData"
INVALID_KEY_PAIR = "InvalidKeyPair"
INVALID_CHAIN = "InvalidChain"
SPEC_CHANGED = "SpecChanged"
EXPIRED = "Expired"
RENEWING = "Renewing"

READY = "Ready"
ISSUED = "Issued"
RENEWED = "Renewed"
REISSUED = "Reissued"
REFUSED = "Refused"
FAILED = "Failed"
INVALID_SPEC = "InvalidSpec"
ISSUER_NOT_FOUND = "IssuerNotFound"

TRIGGERS = (
    DOES_NOT_EXIST,
    SECRET_MISSING,
    SECRET_NOT_OWNED,
    MISSING_DATA,
    INVALID_KEY_PAIR,
    INVALID_CHAIN,
    SPEC_CHANGED,
    EXPIRED,
    RENEWING,
)


def success_reason(trigger: str) -> str:
    """The event reason for a successful issuance caused by ``trigger``."""
    if trigger == DOES_NOT_EXIST:
        return ISSUED
    if trigger in (RENEWING, EXPIRED):
        return RENEWED
    return REISSUED
