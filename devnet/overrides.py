"""`--set KEY=VALUE` and `--sweep KEY=V1,V2,…`: dotted paths into a scenario, checked before anything runs.

A key is a top-level scalar (`epochs`, `epoch_length`, `default_unit_of_compute_price`, `min_deposit`,
`voting_period`, `vote_mode`, `chain_id`, `description`), a chain param (`params.NAME`), or a
validator's key by the validator's name in the file (`validators.mallory.stake`). The seed is not a
key: `--seed` and `--runs` choose the seeds. A value is read as a TOML value (`300`, `true`,
`"text"`); a key whose values are strings also takes bare text (`vote_mode=commit_reveal`,
`params.quorum=0.5`). An unknown key names the nearest valid one; a value of the wrong type, an
empty value list or a grid of more than MAX_GRID points is refused; each point of the grid is then
checked as a whole scenario (a stake of 0 is refused as in the file, naming the point).
"""

from __future__ import annotations

import copy
import difflib
import itertools
import tomllib
from dataclasses import fields
from typing import Any

from chain.params import DEFAULT_PARAMS, Params

from .errors import ScenarioError
from .scenario import TOP_LEVEL_PARAMS, VALIDATOR_KEYS, Scenario, parse_scenario

MAX_GRID = 10_000  # parameter points one sweep may run (times --runs seeds)
TOP_TYPES = {
    "epochs": int,
    "epoch_length": int,
    "default_unit_of_compute_price": int,
    "min_deposit": int,
    "voting_period": int,
    "vote_mode": str,
    "chain_id": str,
    "description": str,
}
VALIDATOR_STRINGS = ("strategy", "denom", "group", "direction")
TYPE_NAMES = {int: "an integer", str: "a string", bool: "true or false"}

Point = tuple[tuple[str, Any], ...]  # (key, value) pairs of one grid point, in --sweep order


def compute_key_types(data: dict[str, Any]) -> dict[str, type]:
    """Every key --set and --sweep accept in this scenario, with the type of its values."""
    keys: dict[str, type] = dict(TOP_TYPES)
    for f in fields(Params):
        if f.name not in TOP_LEVEL_PARAMS:
            keys[f"params.{f.name}"] = type(getattr(DEFAULT_PARAMS, f.name))
    for v in data.get("validators", []) if isinstance(data.get("validators"), list) else []:
        if isinstance(v, dict) and isinstance(v.get("name"), str):
            for key in VALIDATOR_KEYS:
                if key != "name":
                    keys[f"validators.{v['name']}.{key}"] = str if key in VALIDATOR_STRINGS else int
    return keys


def check_key(key: str, keys: dict[str, type], option: str) -> type:
    """The type of a known key; an unknown one is refused, naming the nearest valid key."""
    if key in keys:
        return keys[key]
    if key == "seed":
        raise ScenarioError(f"{option} seed: the seeds are chosen by --seed S0 and --runs N, not {option}")
    nearest = difflib.get_close_matches(key, list(keys), n=1, cutoff=0.0)
    hint = f"; did you mean {nearest[0]}?" if nearest else ""
    raise ScenarioError(f"{option}: {key!r} is not a key of this scenario{hint}")


def parse_value(text: str, kind: type, key: str, option: str) -> Any:
    """A value read as TOML (bare text for a string key), refused if not of `kind`."""
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    if kind is str and not isinstance(value, str):
        value = text
    if type(value) is not kind:
        raise ScenarioError(f"{option} {key}={text}: {key} takes {TYPE_NAMES[kind]}, got {text!r}")
    return value


def split_assignment(text: str, option: str) -> tuple[str, str]:
    """KEY=VALUE split at the first '='."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ScenarioError(f"{option} must be KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def parse_sets(texts: list[str], keys: dict[str, type]) -> Point:
    """The --set assignments, each key known and each value of its type."""
    out: dict[str, Any] = {}
    for text in texts:
        key, raw = split_assignment(text, "--set")
        out[key] = parse_value(raw, check_key(key, keys, "--set"), key, "--set")
    return tuple(out.items())


def parse_sweeps(texts: list[str], keys: dict[str, type]) -> list[tuple[str, tuple[Any, ...]]]:
    """The --sweep axes: a known key (each once) and its distinct values, in order."""
    axes: list[tuple[str, tuple[Any, ...]]] = []
    for text in texts:
        key, raw = split_assignment(text, "--sweep")
        kind = check_key(key, keys, "--sweep")
        if key in (k for k, _ in axes):
            raise ScenarioError(f"--sweep {key} is given twice; give its values once, comma-separated")
        parts = [part.strip() for part in raw.split(",")] if raw else []
        if not parts or any(not part for part in parts):
            raise ScenarioError(f"--sweep {key}={raw}: the grid would be empty; give values such as {key}=1,2,3")
        values = tuple(dict.fromkeys(parse_value(part, kind, key, "--sweep") for part in parts))
        axes.append((key, values))
    return axes


def compute_grid(axes: list[tuple[str, tuple[Any, ...]]]) -> list[Point]:
    """The cartesian grid of the sweep axes (one empty point without any)."""
    size = 1
    for _, values in axes:
        size *= len(values)
    if size > MAX_GRID:
        raise ScenarioError(f"--sweep makes a grid of {size:,} points; at most {MAX_GRID:,}")
    keys = [key for key, _ in axes]
    return [tuple(zip(keys, combo)) for combo in itertools.product(*(values for _, values in axes))]


def apply_point(data: dict[str, Any], point: Point) -> dict[str, Any]:
    """A copy of the scenario's tables with each key of `point` set."""
    out = copy.deepcopy(data)
    for key, value in point:
        head, _, rest = key.partition(".")
        if head == "params":
            out.setdefault("params", {})[rest] = value
        elif head == "validators":
            name, _, field = rest.rpartition(".")
            next(v for v in out["validators"] if v.get("name") == name)[field] = value
        else:
            out[key] = value
    return out


def format_point(point: Point) -> str:
    """key=value, … of a grid point."""
    return ", ".join(f"{key}={value}" for key, value in point)


def compute_variant(text: str, path: str, data: dict[str, Any], point: Point) -> Scenario:
    """The scenario at one point, checked as a whole (an error names the point)."""
    try:
        return parse_scenario(text, path, apply_point(data, point))
    except ScenarioError as exc:
        if not point:
            raise
        raise ScenarioError(f"with {format_point(point)}: {exc}") from None
