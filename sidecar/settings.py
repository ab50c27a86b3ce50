"""Settings from environment variables and the matching flags (a flag wins over its variable).

One table, ``OPTIONS``, drives the parser, the error messages and the documentation. Every value
is checked at start: a wrong one raises ``SettingsError`` naming the variable, its flag and the
fix, and the process exits with code 2 before doing anything else.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import NoReturn, TypeVar

from cacore.config import DEFAULT_FUNCTION, CAConfig, validate_config
from cacore.credentials import FileNames, Ownership
from cacore.errors import ConfigurationError, InvalidRequest
from cacore.keys import KeySpec, parse_key_spec
from cacore.renewal import RenewalPoint, parse_duration, parse_renewal_point
from cacore.request import CertificateRequest, San, Subject, parse_sans, validate

PREFIX = "CERT_SIDECAR_"
T = TypeVar("T")
MODES = ("run", "once", "check", "wait")
FILE_ONLY_MODES = ("check", "wait")  # read the output directory; never ask the CA
ISSUERS = ("lambda", "kubernetes")
KUBE_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
KUBE_CA_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
TRUST_BUNDLE_CONFIGMAP = "clientcert-ca-bundle"
TRUST_BUNDLE_DIR = f"/var/run/{TRUST_BUNDLE_CONFIGMAP}"
OPERATOR_SIGNER_DOMAIN = "clientcerts.dev"
_SIGNER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class SettingsError(ValueError):
    """A setting is unusable; ``str()`` is the one line shown to the user."""


@dataclass(frozen=True)
class Option:
    name: str  # field name; the variable is PREFIX + NAME unless ``env`` says otherwise
    default: str | None
    help: str
    env: tuple[str, ...] = ()  # explicit variable names, first wins
    metavar: str = "VALUE"

    @property
    def variables(self) -> tuple[str, ...]:
        return self.env or (PREFIX + self.name.upper(),)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def label(self) -> str:
        # Every variable that sets it: a bad AWS_REGION must not be blamed on an unset
        # CERT_SIDECAR_REGION.
        return f"{' or '.join(self.variables)} ({self.flag})"


OPTIONS: tuple[Option, ...] = (
    Option(
        "mode",
        "run",
        "run (issue and renew forever), once (issue if needed, exit), check, or wait (until "
        "check passes, up to the once timeout)",
    ),
    # The CA
    Option("function", DEFAULT_FUNCTION, "CA Lambda function name or ARN"),
    Option(
        "region",
        None,
        "AWS region of the CA (a function ARN's region wins)",
        env=(PREFIX + "REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
    ),
    Option(
        "endpoint_url",
        None,
        "Lambda endpoint URL (a local CA, a VPC endpoint)",
        env=(PREFIX + "ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA"),
    ),
    Option("profile", None, "AWS profile to use", env=("AWS_PROFILE",)),
    Option("role_arn", None, "IAM role to assume before invoking the CA"),
    # The Kubernetes issuer (no AWS at all: a CSR that the operator's signer approves and signs)
    Option(
        "issuer",
        "lambda",
        "lambda (invoke the CA function with AWS credentials) or kubernetes (a "
        "CertificateSigningRequest made with the pod's ServiceAccount, signed by the operator)",
    ),
    Option("signer_name", None, "kubernetes: the CSR signer, clientcerts.dev/<LambdaCA name>"),
    Option(
        "kube_api_url",
        None,
        "kubernetes: the API server (default: in-cluster, KUBERNETES_SERVICE_HOST and _PORT)",
    ),
    Option(
        "kube_token_file", KUBE_TOKEN_FILE, "kubernetes: the ServiceAccount token, re-read per call"
    ),
    Option("kube_ca_file", KUBE_CA_FILE, "kubernetes: the API server's CA bundle"),
    Option(
        "trust_bundle_file",
        None,
        "kubernetes: issuing then root CA as the operator publishes them (default "
        f"{TRUST_BUNDLE_DIR}/<LambdaCA>.crt, the {TRUST_BUNDLE_CONFIGMAP} ConfigMap mounted there)",
    ),
    Option(
        "csr_timeout",
        "2m",
        "kubernetes: how long one attempt waits for approval and signing (then the same CSR is "
        "waited on again after a backoff)",
    ),
    # The certificate
    Option("common_name", None, "certificate common name (required for run and once)"),
    Option(
        "sans",
        None,
        "SANs: comma list (app.example.com,IP:10.0.0.1,URI:https://x.example/id) or JSON list/map",
    ),
    Option("organization", None, "subject O"),
    Option("organizational_unit", None, "subject OU"),
    Option("locality", None, "subject L"),
    Option("state", None, "subject ST"),
    Option("country", None, "subject C (two letters)"),
    Option("email_address", None, "subject emailAddress"),
    Option(
        "lifetime_days", "30", "requested lifetime in days (1 to CERT_SIDECAR_MAX_LIFETIME_DAYS)"
    ),
    Option(
        "max_lifetime_days",
        "365",
        "the CA's maximum lifetime (its MAX_CERT_LIFETIME); longer requests are refused",
    ),
    Option("purposes", "client_auth", "comma list of client_auth, server_auth"),
    Option("extended_key_usages", None, "comma list of EKU names (CODE_SIGNING, ...) or OIDs"),
    Option("key_algorithm", "ecdsa-p256", "ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096"),
    # The files
    Option("output_dir", "/certs", "directory that receives the credential set"),
    Option("key_file", "tls.key", "name of the private key file"),
    Option("cert_file", "tls.crt", "name of the certificate file (leaf then issuing CA)"),
    Option("ca_file", "ca.crt", "name of the CA bundle file (issuing then root CA)"),
    Option(
        "serverless_ca_names",
        "false",
        "also write client-key.pem, client-cert.crt and ca-bundle.pem (true/false)",
    ),
    Option("combined_file", None, "also write this file: private key followed by the chain"),
    Option("uid", None, "owner uid of the files (default: the sidecar's own)"),
    Option("gid", None, "owner gid of the files (default: the sidecar's own)"),
    Option("key_mode", "0600", "mode of files holding the private key"),
    Option("file_mode", "0644", "mode of the certificate files"),
    Option("dir_mode", "0755", "mode of each version directory"),
    # Renewal
    Option(
        "renewal_point",
        "2/3",
        "when to renew: fraction of lifetime elapsed (2/3, 0.7, 70%) or duration before expiry "
        "(720h, 10d)",
    ),
    Option("jitter", "0.1", "renew up to this fraction of the time since issuance earlier"),
    Option("backoff_base", "1s", "first retry delay after a failure (doubles each time)"),
    Option("backoff_cap", "5m", "longest retry delay"),
    Option(
        "min_renewal_interval",
        "30s",
        "shortest time between two issuances, a guard against renewal storms",
    ),
    Option(
        "once_timeout",
        "5m",
        "once mode: how long to retry transient failures; wait mode: how long to wait",
    ),
    # Telling the app
    Option("reload_signal", "HUP", "signal sent by the pid-file and process-name actions"),
    Option("reload_pid_file", None, "signal the process whose pid is in this file"),
    Option("reload_process_name", None, "signal every process with this name (shared pid ns)"),
    Option("reload_command", None, "run this command (split like a shell, not run by one)"),
    Option("reload_url", None, "POST a JSON notice to this URL"),
    # Operations
    Option("listen", "0.0.0.0:8081", "health/metrics address host:port, or off"),
    Option("log_level", "info", "debug, info, warning or error"),
)
_BY_NAME = {option.name: option for option in OPTIONS}


@dataclass(frozen=True)
class ReloadSettings:
    signal: int = signal.SIGHUP
    pid_file: Path | None = None
    process_name: str | None = None
    command: tuple[str, ...] = ()
    url: str | None = None

    @property
    def any(self) -> bool:
        return bool(self.pid_file or self.process_name or self.command or self.url)


@dataclass(frozen=True)
class KubeIssuerSettings:
    """Where the Kubernetes issuer asks, as whom, and what it waits for."""

    signer_name: str
    api_url: str
    token_file: Path
    ca_file: Path | None
    trust_bundle_file: Path
    usages: tuple[str, ...]  # spec.usages asking for exactly the configured purposes and EKUs
    csr_timeout: float


@dataclass(frozen=True)
class Settings:
    mode: str
    ca: CAConfig
    request: CertificateRequest | None  # None only in check/wait without a common name
    key_spec: KeySpec
    output_dir: Path
    names: FileNames
    ownership: Ownership
    renewal_point: RenewalPoint
    jitter: float
    backoff_base: float
    backoff_cap: float
    min_renewal_interval: timedelta
    once_timeout: float
    reload: ReloadSettings
    listen: tuple[str, int] | None
    log_level: str
    issuer: str = "lambda"
    kube: KubeIssuerSettings | None = None  # set when issuer is kubernetes


def _fail(option: Option, message: str) -> SettingsError:
    return SettingsError(f"{option.label()}: {message}")


def label(name: str) -> str:
    """How a setting is shown to users: its variable and its flag."""
    return _BY_NAME[name].label()


def raw_values(argv: Sequence[str], environ: Mapping[str, str]) -> dict[str, str | None]:
    """Every option's text: the flag if given, else its first set variable, else the default."""
    if len(argv) > 1 or (argv and argv[0] not in MODES):
        flags, mode = _flags(argv)
    else:  # a container's usual command line: argparse (0.3 MB of RSS) has nothing to parse
        flags, mode = {}, argv[0] if argv else None
    values: dict[str, str | None] = {}
    for option in OPTIONS:
        value = flags.get(option.name)
        if value is None:
            value = next((environ[v] for v in option.variables if environ.get(v)), None)
        values[option.name] = option.default if value is None else value
    if mode:
        values["mode"] = mode
    return values


def _flags(argv: Sequence[str]) -> tuple[dict[str, str | None], str | None]:
    """The flags given and the mode, through argparse (``--help`` too)."""
    import argparse

    class Parser(argparse.ArgumentParser):
        """A usage error is one line (and ``SettingsError``: exit 2 like any bad setting)."""

        def error(self, message: str) -> NoReturn:
            raise SettingsError(f"{message} (see cert-sidecar --help)")

    parser = Parser(
        prog="cert-sidecar",
        description="Keep an X.509 certificate from the serverless CA fresh in a directory.",
        epilog="Every flag has an environment variable; see docs/sidecar.md.",
    )
    parser.add_argument("mode_arg", nargs="?", choices=MODES, metavar="MODE", help="|".join(MODES))
    for option in OPTIONS:
        parser.add_argument(
            option.flag,
            dest=option.name,
            default=None,
            metavar=option.metavar,
            # argparse treats % in help as a format directive ("70%" would crash --help).
            help=f"{option.help} [{option.variables[0]}]".replace("%", "%%"),
        )
    args = parser.parse_args(list(argv))
    return {option.name: getattr(args, option.name) for option in OPTIONS}, args.mode_arg


def _text(values: Mapping[str, str | None], name: str) -> str | None:
    value = values.get(name)
    return value.strip() or None if isinstance(value, str) else None


def _parse(values: Mapping[str, str | None], name: str, parse: Callable[[str], T]) -> T | None:
    """The option's value through ``parse``, or None when it is unset and has no default."""
    text = _text(values, name)
    option = _BY_NAME[name]
    try:
        return parse(text) if text is not None else None
    except InvalidRequest as error:
        raise _fail(option, _core_message(error, name)) from error
    except (ValueError, TypeError, OverflowError) as error:
        raise _fail(option, str(error)) from error


def _value(values: Mapping[str, str | None], name: str, parse: Callable[[str], T]) -> T:
    """``_parse`` for an option that has a default, so it is never unset unless blanked."""
    value = _parse(values, name, parse)
    if value is None:
        option = _BY_NAME[name]
        raise _fail(option, f"must not be empty (the default is {option.default})")
    return value


def _int(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            number = int(text, 10)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number; {what}") from None
        if not low <= number <= high:
            raise ValueError(f"{number} is out of range; {what}")
        return number

    return parse


def _fraction(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number; write e.g. 0.1") from None


def _mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise ValueError(f"{text!r} is not an octal mode; write e.g. 0640") from None
    if not 0 <= mode <= 0o777:
        raise ValueError(f"{text!r} is out of range; write e.g. 0640")
    return mode


def _seconds(text: str) -> float:
    return parse_duration(text).total_seconds()


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{text!r} is not a boolean; write true or false")


def _list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _sans(text: str) -> tuple[San, ...]:
    if text[:1] in "[{":
        try:
            value = json.loads(text)
        except ValueError as error:
            raise ValueError(f"is not valid JSON ({error}); or use a comma list") from None
    else:
        value = text
    return parse_sans(value, "sans")


def _signal(text: str) -> int:
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if name.isdigit() or name[3:].isdigit():
        number = int(name[3:])
        if number in {s.value for s in signal.Signals}:
            return number
    elif hasattr(signal.Signals, name):
        return int(signal.Signals[name])
    raise ValueError(f"{text!r} is not a signal; write e.g. HUP, USR1 or TERM")


def _listen(text: str) -> tuple[str, int] | None:
    if text.lower() in {"off", "none", "false", "0", "disabled"}:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{text!r} is not host:port; write e.g. 0.0.0.0:8081 or off")
    return (host.strip("[]") or "0.0.0.0", int(port))


def _name(text: str) -> str:
    if "/" in text or text.startswith("..") or text.startswith("."):
        raise ValueError(f"{text!r} must be a plain file name such as tls.crt")
    return text


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"{text!r} must be an http(s) URL")
    return text


def _command(text: str) -> tuple[str, ...]:
    try:
        import shlex  # only when a reload command is set

        return tuple(shlex.split(text))
    except ValueError as error:
        raise ValueError(f"cannot split {text!r}: {error}") from None


def _core_message(error: InvalidRequest, name: str) -> str:
    """The core's message without its own field name (the option's label already says which
    setting it is; a core name such as ``renew_before`` would only confuse); an inner field such
    as ``sans[2]`` stays, it says which entry to fix."""
    field, _, message = error.message.partition(": ")
    inner = "[" in field or "." in field
    return error.message if inner else message


def setting_message(error: ConfigurationError) -> str:
    """A configuration error met at call time (an AWS profile that does not exist, no
    credentials), its core field name shown as the setting a user changes."""
    field, sep, message = error.message.partition(": ")
    if not sep:
        return error.message
    if field == "credentials":
        return f"AWS credentials: {message}"
    base = field.split("[")[0].split(".")[0]
    if base in _BY_NAME or base in ("lifetime", "timeouts"):
        return f"{_field_option(field).label()}: {message}"
    return error.message


def _field_option(field: str) -> Option:
    """The option behind a core validation field such as ``sans[2]`` or ``lifetime``."""
    base = field.split("[")[0].split(".")[0]
    aliases = {"lifetime": "lifetime_days", "endpoint_url": "endpoint_url", "timeouts": "function"}
    return _BY_NAME.get(aliases.get(base, base), _BY_NAME["common_name"])


def load(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Parse and check everything; raises ``SettingsError`` for the first unusable value."""
    values = raw_values(argv, environ)
    mode = _text(values, "mode") or "run"
    if mode not in MODES:
        raise _fail(_BY_NAME["mode"], f"{mode!r} is not a mode; use run, once, check or wait")
    issuer = (_text(values, "issuer") or "lambda").lower()
    if issuer not in ISSUERS:
        raise _fail(_BY_NAME["issuer"], f"{issuer!r} is not an issuer; use lambda or kubernetes")

    max_lifetime = _value(values, "max_lifetime_days", _int(1, 36500, "use 1 to 36500 days"))
    ca = CAConfig(
        function=_text(values, "function") or DEFAULT_FUNCTION,
        region=_text(values, "region"),
        profile=_text(values, "profile"),
        role_arn=_text(values, "role_arn"),
        endpoint_url=_text(values, "endpoint_url"),
        max_lifetime_days=max_lifetime,
    )
    try:
        validate_config(ca)
    except ConfigurationError as error:
        field, _, message = error.message.partition(": ")
        raise _fail(_field_option(field), message) from error

    subject = Subject(
        common_name=_text(values, "common_name") or "",
        organization=_text(values, "organization"),
        organizational_unit=_text(values, "organizational_unit"),
        locality=_text(values, "locality"),
        state=_text(values, "state"),
        country=_text(values, "country"),
        email_address=_text(values, "email_address"),
    )
    wanted = CertificateRequest(
        subject=subject,
        sans=_parse(values, "sans", _sans) or (),
        lifetime_days=_value(values, "lifetime_days", _int(1, 36500, "use 1 to 36500 days")),
        purposes=_parse(values, "purposes", _list) or (),
        extended_key_usages=_parse(values, "extended_key_usages", _list) or (),
    )
    request: CertificateRequest | None = wanted
    if not subject.common_name and mode in FILE_ONLY_MODES:
        request = None  # check and wait can verify the files without knowing the name
    else:
        try:
            validate(wanted, max_lifetime)
        except InvalidRequest as error:
            option = _field_option(error.field)
            message = _core_message(error, option.name)
            if option.name == "common_name" and not subject.common_name:
                message = "is required; set the name the certificate is for, e.g. app.example.com"
            raise _fail(option, message) from error

    names = FileNames(
        key=_value(values, "key_file", _name),
        certificate=_value(values, "cert_file", _name),
        ca_bundle=_value(values, "ca_file", _name),
    )
    if _parse(values, "serverless_ca_names", _bool):
        names = replace(
            names,
            compat_key="client-key.pem",
            compat_certificate="client-cert.crt",
            compat_ca_bundle="ca-bundle.pem",
        )
    names = replace(names, combined=_parse(values, "combined_file", _name))
    all_names = [
        n
        for n in (
            names.key,
            names.certificate,
            names.ca_bundle,
            names.compat_key,
            names.compat_certificate,
            names.compat_ca_bundle,
            names.combined,
        )
        if n
    ]
    if len(set(all_names)) != len(all_names):
        raise _fail(_BY_NAME["combined_file"], f"file names {all_names} must all differ")

    ownership = Ownership(
        uid=_parse(values, "uid", _int(0, 2**32 - 2, "use a numeric uid")),
        gid=_parse(values, "gid", _int(0, 2**32 - 2, "use a numeric gid")),
        file_mode=_value(values, "file_mode", _mode),
        private_mode=_value(values, "key_mode", _mode),
        dir_mode=_value(values, "dir_mode", _mode),
    )
    if ownership.private_mode & 0o007:
        raise _fail(
            _BY_NAME["key_mode"],
            f"{ownership.private_mode:04o} lets every user read the private key; use 0600 or 0640",
        )
    for name, bits, advice in (
        ("key_mode", ownership.private_mode, "0600 or 0640"),
        ("file_mode", ownership.file_mode, "0644"),
    ):
        if not bits & 0o400:
            raise _fail(
                _BY_NAME[name],
                f"{bits:04o} does not let even the files' owner read them; use {advice}",
            )
    if ownership.dir_mode & 0o500 != 0o500:
        raise _fail(
            _BY_NAME["dir_mode"],
            f"{ownership.dir_mode:04o} does not let the sidecar list and enter its own version "
            "folders; use 0755, or 0750 with a shared gid",
        )

    jitter = _value(values, "jitter", _fraction)
    if not 0 <= jitter < 1:
        raise _fail(_BY_NAME["jitter"], f"{jitter} must be at least 0 and below 1, e.g. 0.1")
    base = _value(values, "backoff_base", _seconds)
    cap = _value(values, "backoff_cap", _seconds)
    if not 0 < base <= cap:
        raise _fail(
            _BY_NAME["backoff_base"], f"must be positive and at most the cap ({cap} s), e.g. 1s"
        )
    key_text = _text(values, "key_algorithm") or "ecdsa-p256"
    key_spec = _value({"key_algorithm": key_text}, "key_algorithm", parse_key_spec)
    listen = _parse(values, "listen", _listen) if _text(values, "listen") else None

    level = (_text(values, "log_level") or "info").upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise _fail(
            _BY_NAME["log_level"], f"{level.lower()!r} is not debug, info, warning or error"
        )

    return Settings(
        mode=mode,
        ca=ca,
        request=request,
        key_spec=key_spec,
        output_dir=Path(_text(values, "output_dir") or "/certs"),
        names=names,
        ownership=ownership,
        renewal_point=_value(values, "renewal_point", parse_renewal_point),
        jitter=jitter,
        backoff_base=base,
        backoff_cap=cap,
        min_renewal_interval=timedelta(
            seconds=_value(values, "min_renewal_interval", _seconds_or_zero)
        ),
        once_timeout=_value(values, "once_timeout", _seconds),
        reload=ReloadSettings(
            signal=_value(values, "reload_signal", _signal),
            pid_file=_parse(values, "reload_pid_file", Path),
            process_name=_text(values, "reload_process_name"),
            command=_parse(values, "reload_command", _command) or (),
            url=_parse(values, "reload_url", _url),
        ),
        listen=listen,
        log_level=level,
        issuer=issuer,
        kube=_kube_issuer(values, environ, request) if issuer == "kubernetes" else None,
    )


def _in_cluster_api(environ: Mapping[str, str]) -> str | None:
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def _kube_issuer(
    values: Mapping[str, str | None],
    environ: Mapping[str, str],
    request: CertificateRequest | None,
) -> KubeIssuerSettings:
    from cacore.kubecsr import usages_for

    signer = _text(values, "signer_name")
    if not signer:
        raise _fail(
            _BY_NAME["signer_name"],
            f"is required with CERT_SIDECAR_ISSUER=kubernetes, e.g. {OPERATOR_SIGNER_DOMAIN}/prod",
        )
    if not _SIGNER_NAME.match(signer):
        raise _fail(
            _BY_NAME["signer_name"], f"{signer!r} is not a signer name such as clientcerts.dev/prod"
        )
    api = _text(values, "kube_api_url") or _in_cluster_api(environ)
    if not api:
        raise _fail(
            _BY_NAME["kube_api_url"],
            "is not set and KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are missing (not in a "
            "pod?); set the API server URL",
        )
    if not api.startswith("https://"):
        raise _fail(_BY_NAME["kube_api_url"], f"{api!r} must be an https:// URL")
    domain, _, lambdaca = signer.partition("/")
    bundle = _text(values, "trust_bundle_file")
    if not bundle:
        if domain != OPERATOR_SIGNER_DOMAIN:
            raise _fail(_BY_NAME["trust_bundle_file"], f"is required for signer {signer}")
        bundle = f"{TRUST_BUNDLE_DIR}/{lambdaca}.crt"
    usages: tuple[str, ...] = ()
    if request is not None:
        try:
            usages = tuple(usages_for(request))
        except ValueError as error:
            raise _fail(_BY_NAME["extended_key_usages"], str(error)) from error
    ca_file = _text(values, "kube_ca_file")
    return KubeIssuerSettings(
        signer_name=signer,
        api_url=api.rstrip("/"),
        token_file=Path(_text(values, "kube_token_file") or KUBE_TOKEN_FILE),
        ca_file=Path(ca_file) if ca_file else None,
        trust_bundle_file=Path(bundle),
        usages=usages,
        csr_timeout=_value(values, "csr_timeout", _seconds),
    )


def _seconds_or_zero(text: str) -> float:
    return 0.0 if text.strip() == "0" else _seconds(text)


def markdown_table() -> str:
    """The configuration table of docs/sidecar.md, generated from ``OPTIONS``."""
    rows = ["| variable | flag | default | meaning |", "|---|---|---|---|"]
    for option in OPTIONS:
        variables = " or ".join(f"`{v}`" for v in option.variables)
        default = f"`{option.default}`" if option.default is not None else "—"
        rows.append(f"| {variables} | `{option.flag}` | {default} | {option.help} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m sidecar.settings prints the table for the docs
    print(markdown_table())
