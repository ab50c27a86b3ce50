"""Fixtures shared by the whole suite live in tests/support/, one module per real peer."""

pytest_plugins = [
    "support.localca_fixtures",
    "support.kube_fixtures",
    "support.docker_fixtures",
]
