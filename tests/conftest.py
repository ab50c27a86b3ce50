"""Fixtures shared by the whole suite live in tests/support/, one module per real peer."""

import signal

pytest_plugins = [
    "support.localca_fixtures",
    "support.kube_fixtures",
    "support.docker_fixtures",
]


def pytest_configure() -> None:
    # A shell starts a background job (`cmd &` without job control) with SIGINT ignored, and
    # exec keeps an ignored signal: every process a test starts would then ignore the Ctrl-C the
    # test sends it. Python's own handler is restored here, so children start with the default.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
