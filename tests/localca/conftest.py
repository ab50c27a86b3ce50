"""Fixtures for the local CA's pure-level tests (see localca_harness)."""

from __future__ import annotations

import pytest
from localca_harness import NOW, Lambda

from localca.authority import Authority, load_or_create


@pytest.fixture(scope="session")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    ca, _ = load_or_create(tmp_path_factory.mktemp("pure-ca") / "state", NOW)
    return ca


@pytest.fixture
def lam(authority: Authority) -> Lambda:
    return Lambda(authority)
