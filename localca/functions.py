"""Which function an Invoke names: plain name, full or partial ARN, and a qualifier.

Patterns and limits are the Lambda API model's (botocore `lambda` service model, Invoke's
FunctionName and Qualifier); a name that breaks them is a 400 ValidationException, a well-formed
name of another function, account, region or version a 404 ResourceNotFoundException.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote

from localca.config import Config
from localca.replies import HttpError

_FUNCTION_NAME = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?"
    r"(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?"
)
_QUALIFIER = r"\$(LATEST(\.PUBLISHED)?)|[a-zA-Z0-9-_$]+"
LATEST = "$LATEST"


def _invalid(value: str, member: str, constraint: str) -> HttpError:
    return HttpError(
        400,
        "ValidationException",
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: {constraint}",
        close=False,
    )


def _check(value: str, member: str, pattern: str, longest: int) -> HttpError | None:
    if not 1 <= len(value) <= longest:
        return _invalid(
            value, member, f"Member must have length between 1 and {longest}, inclusive"
        )
    if not re.fullmatch(pattern, value):
        return _invalid(value, member, f"Member must satisfy regular expression pattern: {pattern}")
    return None


def resolve(raw_name: str, query: str, config: Config) -> HttpError | None:
    """None when the request names the configured function, else the error AWS answers."""
    name = unquote(raw_name)
    qualifiers = parse_qs(query, keep_blank_values=True).get("Qualifier", [])
    problem = _check(name, "functionName", _FUNCTION_NAME, 256)
    for extra in qualifiers:
        problem = problem or _check(extra, "qualifier", _QUALIFIER, 128)
    if problem is not None:
        return problem
    parts = re.fullmatch(_FUNCTION_NAME, name)
    assert parts is not None  # checked above
    region = (parts[3] or f"{config.region}:")[:-1]
    account = (parts[9] or f"{config.account_id}:")[:-1]
    base, qualifier = parts[11], parts[13]
    for extra in qualifiers:
        if qualifier is not None and extra != qualifier:
            return HttpError(
                400,
                "InvalidParameterValueException",
                "The derived qualifier from the function name does not match the specified "
                "qualifier.",
                close=False,
            )
        qualifier = extra
    if (base, region, account) == (config.function_name, config.region, config.account_id) and (
        qualifier in (None, LATEST)
    ):
        return None
    arn = f"arn:aws:lambda:{region}:{account}:function:{base}"
    shown = f"{arn}:{qualifier}" if qualifier else arn
    return HttpError(404, "ResourceNotFoundException", f"Function not found: {shown}", close=False)
