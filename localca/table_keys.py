"""What the real handler's DynamoDB calls do with the request's raw `common_name`.

Upstream queries its table by `{"S": common_name}` (key-reuse and already-issued checks,
`utils/certs/db.py`) and writes the issued certificate under it. boto3 refuses a value that is
not a string before sending (ParamValidationError) and DynamoDB refuses an empty key
(ValidationException, raised as botocore's ClientError): both crash the Lambda. The classes
below carry botocore's names so a crash reads as the real one; messages are DynamoDB's (as moto
reproduces them).
"""

from __future__ import annotations

from typing import Any


class ParamValidationError(Exception):
    """botocore.exceptions.ParamValidationError, as the Lambda runtime names it."""


class ClientError(Exception):
    """botocore.exceptions.ClientError, as the Lambda runtime names it."""


QUERY = "Query"
PUT_ITEM = "PutItem"

_PARAM = {QUERY: "ExpressionAttributeValues.:CommonName.S", PUT_ITEM: "Item.CommonName.S"}
_EMPTY = {
    QUERY: "One or more parameter values are not valid. The AttributeValue for a key attribute "
    "cannot contain an empty string value. Key: CommonName",
    PUT_ITEM: "One or more parameter values were invalid: An AttributeValue may not contain an "
    "empty string. Key: CommonName",
}


def check(common_name: Any, operation: str) -> None:
    """Raise as boto3/DynamoDB would for this CommonName key value; return if it is usable."""
    if not isinstance(common_name, str):
        raise ParamValidationError(
            f"Parameter validation failed:\nInvalid type for parameter {_PARAM[operation]}, "
            f"value: {common_name}, type: {type(common_name)}, valid types: <class 'str'>"
        )
    if not common_name:
        raise ClientError(
            f"An error occurred (ValidationException) when calling the {operation} operation: "
            f"{_EMPTY[operation]}"
        )
