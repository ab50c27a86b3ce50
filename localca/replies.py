"""HTTP answers in the Lambda API's shapes: service errors, function results, crashes."""

from __future__ import annotations

import json
import traceback
from typing import Any

ERROR_TYPE_HEADER = "x-amzn-ErrorType"


class Reply:
    """An HTTP answer: status, headers, JSON body (or none)."""

    def __init__(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.body = b"" if body is None else json.dumps(body).encode()
        self.headers = {"Content-Type": "application/json", **(headers or {})}

    @property
    def error_code(self) -> str | None:
        value = self.headers.get(ERROR_TYPE_HEADER)
        return value.split(":", 1)[0] if value else None


def aws_error(status: int, code: str, message: str, kind: str = "User", **extra: Any) -> Reply:
    # botocore takes the code from x-amzn-ErrorType and the message from the body.
    body = {"Type": kind, "message": message, "Message": message, **extra}
    return Reply(status, body, {ERROR_TYPE_HEADER: f"{code}:http://internal.amazon.com/"})


class HttpError(Exception):
    """A request the service refuses before it reaches the function, as an AWS error reply.

    `close` means the connection cannot carry another request (its body was not read)."""

    def __init__(self, status: int, code: str, message: str, *, close: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.close = close

    def reply(self) -> Reply:
        kind = "Service" if self.status >= 500 else "User"
        return aws_error(self.status, self.code, self.message, kind=kind)


def crash_payload(exc: BaseException, request_id: str) -> dict[str, Any]:
    """The Python runtime's payload for an unhandled exception."""
    frames = traceback.extract_tb(exc.__traceback__)
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(frames),
    }
