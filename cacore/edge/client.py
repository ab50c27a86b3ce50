"""The CA client: the only code that talks to the Lambda. A ``LambdaTransport`` owns the boto3
client, credentials and timeouts and turns every wire failure into a typed ``CAError``; ``CAClient``
above it speaks in requests and certificates only."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cacore.config import CAConfig, validate_config
from cacore.csr import load_csr
from cacore.edge import aws
from cacore.edge.keygen import build_csr, generate_key
from cacore.errors import (
    AccessDenied,
    CAError,
    ConfigurationError,
    FunctionNotFound,
    InvalidResponse,
    Throttled,
    TransportError,
)
from cacore.keys import DEFAULT_KEY, KeySpec, PrivateKey
from cacore.request import DEFAULT_MAX_LIFETIME_DAYS, CertificateRequest, to_event, validate
from cacore.response import CAChain, IssuedCertificate, parse_ca_chain, parse_issued, verify_issued

_ACCESS_CODES = {
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "ExpiredToken",
    "InvalidClientTokenId",
    "AccessDenied",
}
_THROTTLE_CODES = {"TooManyRequestsException", "Throttling", "ThrottlingException"}


class Invoker(Protocol):
    """Sends one event and returns (decoded payload, FunctionError or None)."""

    def invoke(self, event: dict) -> tuple[object, str | None]: ...


class LambdaTransport:
    def __init__(self, config: CAConfig, session_factory: Callable[[], Any] | None = None) -> None:
        self.config = validate_config(config)
        self._session_factory = session_factory
        self._client: Any = None

    def _make_client(self) -> Any:
        from botocore.config import Config

        session = aws.session(self.config.access, self._session_factory)
        region = self.config.function_region or self.config.region or session.region_name
        if not region:
            raise ConfigurationError(
                "region: none configured; set the CA region (e.g. AWS_REGION=eu-west-2) "
                "or use a function ARN"
            )
        botocore_config = Config(
            read_timeout=self.config.read_timeout,
            connect_timeout=self.config.connect_timeout,
            retries={"max_attempts": 0, "mode": "standard"},
            tcp_keepalive=True,
        )
        return session.client(
            "lambda",
            region_name=region,
            endpoint_url=self.config.endpoint_url,
            config=botocore_config,
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                self._client = self._make_client()
            except CAError:
                raise
            except Exception as error:  # profile not found, bad session
                raise ConfigurationError(f"cannot set up the AWS client: {error}") from error
        return self._client

    def invoke(self, event: dict) -> tuple[object, str | None]:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        client = self.client
        try:
            response = client.invoke(
                FunctionName=self.config.function,
                InvocationType="RequestResponse",
                Payload=json.dumps(event).encode(),
            )
            raw = response["Payload"].read()
        except ClientError as error:
            raise _client_error(error) from error
        except (NoCredentialsError, PartialCredentialsError) as error:
            raise AccessDenied(f"no usable AWS credentials: {error}") from error
        except (ConnectionError, HTTPClientError) as error:
            raise TransportError(f"cannot reach the CA function: {error}") from error
        except BotoCoreError as error:
            raise TransportError(f"invoke failed: {error}") from error
        try:
            payload = json.loads(raw) if raw else None
        except ValueError as error:
            raise InvalidResponse(f"CA payload is not JSON: {raw[:200]!r}") from error
        return payload, response.get("FunctionError")


def _client_error(error: Any) -> CAError:
    """A botocore ``ClientError`` as the core's error."""
    details = error.response.get("Error", {})
    code = str(details.get("Code", ""))
    message = str(details.get("Message", "")) or code
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    if code in _THROTTLE_CODES or status == 429:
        headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        retry_after = headers.get("retry-after")
        return Throttled(f"{code}: {message}", float(retry_after) if retry_after else None)
    if code in _ACCESS_CODES or status == 403:
        return AccessDenied(f"{code}: {message}")
    if code == "ResourceNotFoundException" or status == 404:
        return FunctionNotFound(f"{code}: {message}")
    if status >= 500:
        return TransportError(f"Lambda service error {code}: {message}")
    return CAError(f"{code}: {message}")


@dataclass(frozen=True)
class Issuance:
    """One successful issuance: the key we made and the verified certificate for it."""

    key: PrivateKey
    certificate: IssuedCertificate
    seconds: float


class CAClient:
    def __init__(
        self,
        invoker: Invoker,
        clock: Callable[[], float] = time.monotonic,
        max_lifetime_days: int = DEFAULT_MAX_LIFETIME_DAYS,
    ) -> None:
        self.invoker = invoker
        self.clock = clock
        self.max_lifetime_days = max_lifetime_days

    def issue(self, request: CertificateRequest, key: PrivateKey) -> IssuedCertificate:
        """Validate, send, parse and verify; raises a ``CAError`` and returns nothing unverified."""
        validate(request, self.max_lifetime_days)
        csr_pem = build_csr(key, request.subject)
        payload, function_error = self.invoker.invoke(to_event(request, csr_pem))
        issued = parse_issued(payload, function_error)
        return verify_issued(issued, key)

    def issue_csr(self, request: CertificateRequest, csr_pem: bytes) -> IssuedCertificate:
        """Certify a CSR made elsewhere (a partner's); the result must carry the CSR's key."""
        validate(request, self.max_lifetime_days)
        public_key = load_csr(csr_pem).public_key()
        payload, function_error = self.invoker.invoke(to_event(request, csr_pem))
        return verify_issued(parse_issued(payload, function_error), public_key)

    def issue_with_new_key(
        self, request: CertificateRequest, spec: KeySpec = DEFAULT_KEY
    ) -> Issuance:
        """The whole job: a fresh key (the CA refuses reused keys), CSR, call, verification."""
        validate(request, self.max_lifetime_days)
        started = self.clock()
        key = generate_key(spec)
        certificate = self.issue(request, key)
        return Issuance(key=key, certificate=certificate, seconds=self.clock() - started)

    def ca_chain(self) -> CAChain:
        payload, function_error = self.invoker.invoke({"ca_chain_only": True})
        return parse_ca_chain(payload, function_error)


def ca_client(config: CAConfig) -> CAClient:
    return CAClient(LambdaTransport(config), max_lifetime_days=config.max_lifetime_days)
