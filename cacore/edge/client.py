"""The CA client: the only code that talks to the Lambda. A ``LambdaTransport`` owns the boto3
client, credentials and timeouts and turns every wire failure into a typed ``CAError``; ``CAClient``
above it speaks in requests and certificates only."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from cacore.config import CAConfig, validate_config
from cacore.csr import load_csr
from cacore.edge import aws
from cacore.edge.deadline import call_with_deadline
from cacore.edge.keygen import build_csr, generate_key
from cacore.errors import (
    AccessDenied,
    CAError,
    ConfigurationError,
    FunctionNotFound,
    InvalidResponse,
    Throttled,
    Timeout,
    TransportError,
)
from cacore.keys import DEFAULT_KEY, KeySpec, PrivateKey
from cacore.request import DEFAULT_MAX_LIFETIME_DAYS, CertificateRequest, to_event, validate
from cacore.response import (
    CAChain,
    Issuance,
    IssuedCertificate,
    decode_payload,
    parse_ca_chain,
    parse_issued,
    verify_issued,
)

__all__ = ["CAClient", "Invoker", "Issuance", "LambdaTransport", "ca_client", "timeout_of"]

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
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # the Lambda service's limit for a synchronous answer


class Invoker(Protocol):
    """Sends one event and returns (decoded payload, FunctionError or None)."""

    def invoke(self, event: dict) -> tuple[object, str | None]: ...


class LambdaTransport:
    """``on_slow(seconds_left)`` is called once when an invoke takes more than a couple of
    seconds (a command-line tool tells its user what it is waiting for).

    ``deadline_thread=False`` leaves the invoke's overall deadline (``read_timeout``) to the
    caller, which must enforce it itself: the operator's CA pool awaits each call on its event
    loop with that deadline, so a thread per call to wait on would be pure cost."""

    def __init__(
        self,
        config: CAConfig,
        session_factory: Callable[[], Any] | None = None,
        on_slow: Callable[[float], None] | None = None,
        deadline_thread: bool = True,
    ) -> None:
        self.config = validate_config(config)
        self._session_factory = session_factory
        self._client: Any = None
        self.on_slow = on_slow
        self.deadline_thread = deadline_thread

    @property
    def target(self) -> str:
        """What an invoke waits for, in words: the function and where it is reached."""
        return target_of(self.config)

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
            connect_timeout=min(self.config.connect_timeout, self.config.read_timeout),
            retries={"max_attempts": 0, "mode": "standard"},
            tcp_keepalive=True,
            # The one call's parameters are checked already: the function by ``validate_config``,
            # the rest are constants and bytes. botocore's own check cost ~15 % of an invoke.
            parameter_validation=False,
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
            from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

            try:
                self._client = self._make_client()
            except CAError:
                raise
            except (ConnectionError, HTTPClientError) as error:  # STS, for --role-arn
                raise TransportError(f"cannot reach AWS STS to assume the role: {error}") from error
            except ClientError as error:  # STS refused to let us assume the role
                raise ConfigurationError(
                    f"role_arn: cannot assume {self.config.role_arn}: {error}; check the role's "
                    "trust policy and the caller's identity"
                ) from error
            except Exception as error:  # a profile not found, a region or endpoint boto refuses
                field = {
                    "ProfileNotFound": "profile",
                    "InvalidRegionError": "region",
                    "NoRegionError": "region",
                }.get(
                    type(error).__name__,
                    "endpoint_url" if isinstance(error, ValueError) else "profile",
                )
                raise ConfigurationError(
                    f"{field}: cannot set up the AWS client: {error}"
                ) from error
        return self._client

    def invoke(self, event: dict) -> tuple[object, str | None]:
        """One invoke, over within ``read_timeout`` seconds whatever the network does (the socket
        timeout alone restarts with every byte a slow server trickles)."""
        if not self.deadline_thread:
            return self._invoke(event)
        return call_with_deadline(
            lambda: self._invoke(event), self.config.read_timeout, self.target, self.on_slow
        )

    def _invoke(self, event: dict) -> tuple[object, str | None]:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        client = self.client
        try:
            response = client.invoke(
                FunctionName=self.config.function,
                InvocationType="RequestResponse",
                Payload=json.dumps(event).encode(),
            )
            # Lambda answers at most 6 MB; a hostile endpoint must not fill our memory.
            raw = response["Payload"].read(MAX_PAYLOAD_BYTES + 1)
        except ClientError as error:
            raise _client_error(error) from error
        except (NoCredentialsError, PartialCredentialsError) as error:
            raise ConfigurationError(
                f"credentials: {error}: configure AWS credentials (AWS_PROFILE, "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a role such as IRSA, EKS Pod "
                "Identity or the ECS task role)"
            ) from error
        except ReadTimeoutError as error:
            raise timeout_of(self.config) from error
        except (ConnectionError, HTTPClientError) as error:
            raise TransportError(f"cannot reach {self.target}: {error}") from error
        except BotoCoreError as error:
            raise TransportError(f"invoke failed: {error}") from error
        except (OSError, ValueError) as error:  # a stream cut short, a body that is not HTTP
            raise TransportError(f"invoke failed: {type(error).__name__}: {error}") from error
        if len(raw) > MAX_PAYLOAD_BYTES:
            raise InvalidResponse(f"{self.target} answered more than {MAX_PAYLOAD_BYTES} bytes")
        function_error = response.get("FunctionError")
        return decode_payload(raw), str(function_error) if function_error else None


def target_of(config: CAConfig) -> str:
    """What an invoke for ``config`` waits for, in words: the function and where it is reached."""
    endpoint = (
        config.endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_LAMBDA")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    where = f" at {endpoint}" if endpoint else ""
    return f"the CA function {config.function}{where}"


def timeout_of(config: CAConfig) -> Timeout:
    """The error of an invoke for ``config`` that outlived its ``read_timeout``."""
    return Timeout(f"{target_of(config)} did not answer within {config.read_timeout:g} s")


def _client_error(error: Any) -> CAError:
    """A botocore ``ClientError`` as the core's error."""
    details = error.response.get("Error", {})
    code = str(details.get("Code", ""))
    message = str(details.get("Message", "")) or code
    metadata = error.response.get("ResponseMetadata", {})
    status = _number(metadata.get("HTTPStatusCode")) or 0
    if code in _THROTTLE_CODES or status == 429:
        retry_after = _number(metadata.get("HTTPHeaders", {}).get("retry-after"))
        return Throttled(f"{code}: {message}", retry_after)
    if code in _ACCESS_CODES or status == 403:
        return AccessDenied(f"{code}: {message}")
    if code == "ResourceNotFoundException" or status == 404:
        return FunctionNotFound(f"{code}: {message}")
    if status >= 500:
        return TransportError(f"Lambda service error {code}: {message}")
    return CAError(f"{code}: {message}")


def _number(value: object) -> float | None:
    """A header or status as a number when it is one (an endpoint may send anything); only a
    finite, non-negative value below a day counts."""
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if 0 <= number < 86400 else None


class CAClient:
    def __init__(
        self,
        invoker: Invoker,
        clock: Callable[[], float] = time.monotonic,
        max_lifetime_days: int = DEFAULT_MAX_LIFETIME_DAYS,
        now: Callable[[], datetime | None] = lambda: datetime.now(UTC),
    ) -> None:
        self.invoker = invoker
        self.clock = clock
        self.max_lifetime_days = max_lifetime_days
        self.now = now

    def issue(self, request: CertificateRequest, key: PrivateKey) -> IssuedCertificate:
        """Validate, send, parse and verify; raises a ``CAError`` and returns nothing unverified."""
        validate(request, self.max_lifetime_days)
        csr_pem = build_csr(key, request.subject)
        payload, function_error = self.invoker.invoke(to_event(request, csr_pem))
        issued = parse_issued(payload, function_error)
        return verify_issued(issued, key, self.now())

    def issue_csr(self, request: CertificateRequest, csr_pem: bytes) -> IssuedCertificate:
        """Certify a CSR made elsewhere (a partner's); the result must carry the CSR's key."""
        validate(request, self.max_lifetime_days)
        public_key = load_csr(csr_pem).public_key()
        payload, function_error = self.invoker.invoke(to_event(request, csr_pem))
        return verify_issued(parse_issued(payload, function_error), public_key, self.now())

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


def ca_client(
    config: CAConfig,
    on_slow: Callable[[float], None] | None = None,
    refuse_not_valid_now: bool = True,
) -> CAClient:
    """The CA client for ``config``. A renewal loop refuses a certificate that is not valid now
    (written, it would only be asked for again at once); a one-shot command keeps it and shows
    its dates (``refuse_not_valid_now=False``), since the CA has already issued it."""
    return CAClient(
        LambdaTransport(config, on_slow=on_slow),
        max_lifetime_days=config.max_lifetime_days,
        now=(lambda: datetime.now(UTC)) if refuse_not_valid_now else (lambda: None),
    )
