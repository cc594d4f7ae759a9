"""Fixtures shared by the chain and node tests; the plain helpers are in tests/helpers.py."""

from __future__ import annotations

from typing import Any

import pytest

from chain.app import Application
from tests.helpers import make_app, make_genesis


@pytest.fixture
def genesis3() -> dict[str, Any]:
    """Validators a, b, c with stakes 50, 30, 20; accounts a..e with 1000 ngonka; long epochs."""
    return make_genesis({"a": 50, "b": 30, "c": 20}, epoch_length=100)


@pytest.fixture
def app3(genesis3: dict[str, Any]) -> Application:
    """An Application at height 0 on genesis3."""
    return make_app(genesis3)
