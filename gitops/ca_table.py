"""Reading the CA's DynamoDB table of issued certificates (the imperative shell around
``records``), through the project's one AWS session: the same profile, role and region as the
CA calls."""

from __future__ import annotations

from cacore.config import AWSAccess
from cacore.edge import aws
from cacore.errors import ConfigurationError
from gitops.errors import GitopsError
from gitops.records import IssuedRecord, parse_item

NO_CREDENTIALS = (
    "credentials: no AWS credentials for DynamoDB: configure them (AWS_PROFILE, "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the CI's role)"
)


class CATable:
    def __init__(
        self,
        table: str,
        access: AWSAccess,
        endpoint_url: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        from botocore.config import Config  # ~0.3 s: only commands that read the table pay

        self.table = table
        self.endpoint_url = endpoint_url
        from botocore.exceptions import (
            ClientError,
            NoCredentialsError,
            NoRegionError,
            PartialCredentialsError,
        )

        try:
            self.client = aws.session(access).client(
                "dynamodb",
                region_name=access.region,
                endpoint_url=endpoint_url,
                config=Config(
                    retries={"max_attempts": 3, "mode": "standard"},
                    # --timeout bounds every wait, the table's as well as the CA's.
                    connect_timeout=min(5.0, timeout),
                    read_timeout=min(60.0, timeout),
                ),
            )
        except NoRegionError as error:
            raise ConfigurationError(
                "region: no AWS region for DynamoDB; set --region or AWS_REGION"
            ) from error
        except (NoCredentialsError, PartialCredentialsError) as error:
            raise ConfigurationError(NO_CREDENTIALS) from error
        except ClientError as error:  # assuming --role-arn was refused
            raise ConfigurationError(
                f"role_arn: cannot assume {access.role_arn}: {error}; check the role's trust "
                "policy and your identity"
            ) from error
        except Exception as error:  # a profile that does not exist, an endpoint boto refuses
            field = "dynamodb_endpoint_url" if isinstance(error, ValueError) else "profile"
            raise ConfigurationError(
                f"{field}: cannot set up the AWS session for DynamoDB: {error}"
            ) from error

    def _call(self, operation: str, **kwargs: object) -> dict:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        try:
            return getattr(self.client, operation)(TableName=self.table, **kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise GitopsError(
                    f"--table: DynamoDB table {self.table!r} does not exist; the CA's table is "
                    "<Project>CA<Env> (e.g. ServerlessCADev): check --project/--env or --table"
                ) from error
            raise GitopsError(f"DynamoDB {operation} on {self.table} failed: {error}") from error
        except (NoCredentialsError, PartialCredentialsError) as error:
            raise ConfigurationError(NO_CREDENTIALS) from error
        except (BotoCoreError, OSError, ValueError) as error:  # ValueError: a URL boto refuses
            where = self.endpoint_url or "AWS"
            raise GitopsError(f"cannot reach DynamoDB at {where}: {error}") from error

    def records(self, common_name: str) -> list[IssuedRecord]:
        """Every certificate issued for ``common_name``."""
        items: list[dict] = []
        start: dict | None = None
        while True:
            kwargs: dict[str, object] = {
                "KeyConditionExpression": "CommonName = :cn",
                "ExpressionAttributeValues": {":cn": {"S": common_name}},
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            page = self._call("query", **kwargs)
            items += page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                return [parse_item(item) for item in items]

    def record(self, common_name: str, serial: str) -> IssuedRecord | None:
        key = {"CommonName": {"S": common_name}, "SerialNumber": {"S": serial}}
        item = self._call("get_item", Key=key).get("Item")
        return parse_item(item) if item else None
