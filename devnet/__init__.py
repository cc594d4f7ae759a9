"""Local networks and simulations of uoc: scenario files and the in-process engine."""

from .errors import DevnetError, ScenarioError
from .scenario import Scenario, ValidatorSpec, load_scenario, parse_scenario
from .simulate import run_inproc

__all__ = ["DevnetError", "Scenario", "ScenarioError", "ValidatorSpec", "load_scenario", "parse_scenario", "run_inproc"]
