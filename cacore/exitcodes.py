"""The exit codes of every command-line tool of the project (``ca-cert``, ``cert-sidecar``,
``certs-gitops``, ``clientcert-operator``, ``local-ca``): one table, documented once in the
README's "Exit codes" section, which a test keeps equal to ``TABLE``.

A script can tell "fix your input" (2) from "the CA or the check failed; the same command may
work later or after a fix elsewhere" (1) without reading messages.
"""

from __future__ import annotations

from cacore.errors import ConfigurationError, InvalidRequest

OK = 0
FAILED = 1
USAGE = 2
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
TERMINATED = 143  # 128 + SIGTERM

TABLE: tuple[tuple[int, str], ...] = (
    (OK, "done: the certificate is in place, the check passed, nothing was wrong"),
    (
        FAILED,
        "the work failed: the CA refused, crashed or could not be reached, a handshake failed, "
        "no usable certificate is in place, or `certs-gitops validate` found problems",
    ),
    (
        USAGE,
        "bad input or configuration (a flag, a variable, a file), refused before anything "
        "was sent; the message names the setting and the fix",
    ),
    (INTERRUPTED, "stopped by Ctrl-C (SIGINT)"),
    (
        TERMINATED,
        "stopped by SIGTERM before the work was done (long-running commands, `cert-sidecar "
        "run`, `ca-cert serve`, `clientcert-operator`, `local-ca`, exit 0: SIGTERM is how they "
        "are stopped)",
    ),
)


def for_signal(signum: int) -> int:
    """The exit code of a one-shot command stopped by signal ``signum`` (128 + its number, the
    shell's convention; SIGINT and SIGTERM are the two in the table)."""
    return 128 + signum


def for_error(error: BaseException) -> int:
    """The exit code for an error that ends a command: bad input or settings are ``USAGE``,
    anything else (a CA error, a failed check) is ``FAILED``."""
    if isinstance(error, InvalidRequest | ConfigurationError):
        return USAGE
    return FAILED
