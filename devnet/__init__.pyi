"""The re-exports of `devnet` for type checkers; `devnet/__init__.py` loads each on first use (lazy_loader)."""

from .errors import DevnetError, ScenarioError
from .scenario import (
    Scenario,
    ValidatorSpec,
    load_scenario,
    parse_scenario,
)
from .simulate import run_inproc

__all__ = ["DevnetError", "Scenario", "ScenarioError", "ValidatorSpec", "load_scenario", "parse_scenario", "run_inproc"]
