"""One error tree for everything that can go wrong when asking the CA for a certificate.

Callers decide on two attributes, never on message text: ``reason`` (a CamelCase constant, used
verbatim in conditions, events, metrics and logs) and ``retryable`` (a transient fault that the
same request may survive; anything else needs a change of input or configuration).
"""

from __future__ import annotations

from cacore.text import printable

MAX_MESSAGE = 1000  # characters of one error message; outside text inside it is bounded too


class CAError(Exception):
    """Root of every failure raised by the core and the CA client."""

    reason = "CAError"
    retryable = False

    def __init__(self, message: str) -> None:
        # Messages quote outside text (the CA's words, a value from a file): every one is made
        # safe here, once, for terminals, logs, Kubernetes conditions and events.
        message = printable(message, MAX_MESSAGE)
        super().__init__(message)
        self.message = message


class InvalidRequest(CAError):
    """The request is wrong before anything is sent; ``field`` names what to fix."""

    reason = "InvalidRequest"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ConfigurationError(CAError):
    """The CA connection settings are wrong or missing (function, region, credentials)."""

    reason = "ConfigurationError"


class CARefused(CAError):
    """The CA answered ``{"error": ...}``; the CA's own message is kept verbatim, except that
    control characters are escaped and its length is bounded (a hostile or broken endpoint must
    not be able to write escape sequences to a terminal or flood a log)."""

    reason = "Refused"

    def __init__(self, message: str) -> None:
        super().__init__(printable(message))


class CAFunctionError(CAError):
    """The Lambda function crashed (``FunctionError``); retried with backoff: crashes may pass."""

    reason = "FunctionError"
    retryable = True

    def __init__(self, error_type: str, error_message: str) -> None:
        error_type, error_message = printable(error_type, 100), printable(error_message)
        super().__init__(f"CA function crashed: {error_type}: {error_message}")
        self.error_type = error_type
        self.error_message = error_message


class Throttled(CAError):
    """Lambda refused the invoke for concurrency or rate (``TooManyRequestsException``)."""

    reason = "Throttled"
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AccessDenied(CAError):
    """The caller's identity may not invoke the function, or its credentials are not accepted."""

    reason = "AccessDenied"


class FunctionNotFound(CAError):
    """No function by that name or ARN in that account and region."""

    reason = "FunctionNotFound"


class TransportError(CAError):
    """The invoke did not complete: connection refused, timeout, or a Lambda service fault."""

    reason = "TransportError"
    retryable = True


class Timeout(TransportError):
    """No answer within the caller's deadline. The CA may still issue: a caller that made its
    own key simply asks again with a new one."""

    reason = "Timeout"


class InvalidResponse(CAError):
    """The CA answered, but not with a certificate we can trust or use; nothing is written."""

    reason = "InvalidResponse"


class Denied(CAError):
    """A Kubernetes signer's approver denied the certificate request; its reason and message (the
    policy and field to change) are kept verbatim. Asking again changes nothing until a person
    changes the policy or the request."""

    reason = "Denied"

    def __init__(self, denial_reason: str, message: str) -> None:
        super().__init__(f"{denial_reason}: {message}")
        self.denial_reason = denial_reason


class PendingApproval(CAError):
    """The certificate request was neither approved nor signed in time; the same request is
    waited on again (a person may still approve it, or the signer may be catching up)."""

    reason = "Pending"
    retryable = True
