"""The operator's own settings, read from the environment (the CLI's flags set the same names):
one pure function, so a wrong value is refused at start with the variable's name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cacore.config import CAConfig, validate_config
from cacore.errors import ConfigurationError
from certoperator.policy import RetryPolicy

PREFIX = "CLIENTCERT_"


@dataclass(frozen=True)
class OperatorSettings:
    default_issuer: str | None = None  # a LambdaCA name used when issuerRef is empty
    default_ca: CAConfig | None = None  # or a CA described by the operator's environment
    max_concurrent: int = 8
    metrics_address: str = "0.0.0.0"
    metrics_port: int = 9090  # 0 turns the metrics endpoint off
    jitter: float = 0.1
    resync_seconds: float = 3600.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Issued certificates whose Secret could not be written yet, kept across a restart
    # (certoperator.pending); None keeps them in memory only.
    stash_dir: str | None = None
    shutdown_seconds: float = 25.0  # SIGTERM to exit, at most (under the Pod's grace period)
    stall_seconds: float = 30.0  # an event loop that has not run this long is dead
    namespaces: tuple[str, ...] = ()  # served only these (kopf's --namespace); () all of them


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    text = env.get(PREFIX + name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{PREFIX}{name}: {text!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{PREFIX}{name}: {value:g} is outside {low:g}..{high:g}")
    return value


def from_env(env: Mapping[str, str]) -> OperatorSettings:
    function = env.get(PREFIX + "CA_FUNCTION") or None
    default_ca = None
    if function:
        config = CAConfig(
            function=function,
            region=env.get(PREFIX + "CA_REGION") or None,
            role_arn=env.get(PREFIX + "CA_ROLE_ARN") or None,
            endpoint_url=env.get(PREFIX + "CA_ENDPOINT_URL") or None,
            max_lifetime_days=int(_number(env, "CA_MAX_LIFETIME_DAYS", 365, 1, 36500)),
        )
        try:
            default_ca = validate_config(config)
        except ConfigurationError as error:
            # The core names its own fields (function, role_arn); users set variables.
            field, _, rest = error.message.partition(": ")
            raise ConfigurationError(f"{PREFIX}CA_{field.upper()}: {rest or field}") from None
    retry = RetryPolicy(
        base=_number(env, "RETRY_BASE_SECONDS", 2.0, 0.1, 3600),
        cap=_number(env, "RETRY_CAP_SECONDS", 300.0, 1, 86400),
        refused_base=_number(env, "REFUSED_RETRY_SECONDS", 3600.0, 1, 86400 * 7),
        refused_cap=_number(env, "REFUSED_RETRY_CAP_SECONDS", 86400.0, 1, 86400 * 30),
    )
    return OperatorSettings(
        default_issuer=env.get(PREFIX + "DEFAULT_ISSUER") or None,
        default_ca=default_ca,
        max_concurrent=int(_number(env, "MAX_CONCURRENT_ISSUANCES", 8, 1, 256)),
        metrics_address=env.get(PREFIX + "METRICS_ADDRESS") or "0.0.0.0",
        metrics_port=int(_number(env, "METRICS_PORT", 9090, 0, 65535)),
        jitter=_number(env, "RENEWAL_JITTER", 0.1, 0, 0.5),
        resync_seconds=_number(env, "RESYNC_SECONDS", 3600.0, 1, 86400),
        retry=retry,
        stash_dir=env.get(PREFIX + "STASH_DIR") or None,
        shutdown_seconds=_number(env, "SHUTDOWN_SECONDS", 25.0, 2, 3600),
        stall_seconds=_number(env, "STALL_SECONDS", 30.0, 5, 3600),
        namespaces=tuple(n for n in (env.get(PREFIX + "NAMESPACES") or "").split(",") if n),
    )


def _whole_days(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def ca_config_for(name: str, spec: Mapping[str, object]) -> CAConfig:
    """A LambdaCA's spec as the core's connection settings. Credentials are the operator's own
    (IRSA, Pod Identity, environment): a namespace user can only pick a LambdaCA an
    administrator created, never a function of their own."""

    def text(key: str) -> str | None:
        value = spec.get(key)
        return str(value) if value else None

    return validate_config(
        CAConfig(
            function=text("functionName") or "",
            region=text("region"),
            role_arn=text("roleArn"),
            endpoint_url=text("endpointUrl"),
            max_lifetime_days=_whole_days(spec.get("maxLifetimeDays", 365)),
        ),
        prefix=f"LambdaCA {name}: spec.",
    )
