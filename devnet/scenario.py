"""Scenario files: a TOML description of validators, their price strategies, governance events and
the clients whose jobs they serve, checked strictly.

Every error names the file, the line and the key, e.g.
`examples/basic.toml:14: validators[1].stake must be an integer ≥ 1, got "400"`.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from functools import cached_property
from math import floor
from pathlib import Path
from typing import Any

from chain.errors import ChainError, InvalidGenesis, MoneyError
from chain.fields import is_decimal
from chain.money import DENOMS, MAX_NGONKA, to_ngonka
from chain.params import DEFAULT_PARAMS, VOTE_MODES, Params
from chain.tx import VOTE_OPTIONS, parse_model_id

from .errors import ScenarioError

STRATEGIES = ("honest", "fixed", "silent", "extreme", "copycat", "cartel", "sybil", "free_rider")
DIRECTIONS = ("up", "down")
MAX_SYBILS = 1_000  # validators one sybil stake may be split over
MAX_CARTEL_TARGET_BPS = 100_000  # a cartel may aim at most 10 times the price up (down: below 100%)
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")

TOP_KEYS = (
    "seed",
    "epochs",
    "epoch_length",
    "default_unit_of_compute_price",
    "chain_id",
    "description",
    "min_deposit",
    "voting_period",
    "vote_mode",
    "validators",
    "proposals",
    "clients",
    "params",
)
# chain params a scenario sets with its own top-level keys (or computes), so [params] refuses them
TOP_LEVEL_PARAMS = (
    "epoch_length",
    "default_unit_of_compute_price",
    "min_deposit",
    "voting_period",
    "max_deposit_period",
    "max_validators",
    "vote_mode",
)
PROPOSAL_KINDS = ("register_model", "remove_model")
PROPOSAL_KEYS = ("at_epoch", "proposer", "kind", "id", "units_of_compute_per_token", "deposit", "votes")
VALIDATOR_KEYS = (
    "name",
    "stake",
    "strategy",
    "true_cost",
    "noise_bps",
    "price",
    "denom",
    "low",
    "high",
    "join_epoch",
    "leave_epoch",
    "vote_every",
    "group",
    "target_bps",
    "direction",
    "count",
)
STRATEGY_KEYS = {
    "honest": ("true_cost", "noise_bps"),
    "fixed": ("price", "denom"),
    "silent": (),
    "extreme": ("low", "high"),
    "copycat": (),
    "cartel": ("group", "target_bps", "direction"),
    "sybil": ("count", "price", "denom"),
    "free_rider": (),
}
ALL_STRATEGY_KEYS = tuple(dict.fromkeys(key for keys in STRATEGY_KEYS.values() for key in keys))

CLIENT_KEYS = ("name", "escrow", "demand")
DEMAND_KINDS = ("constant", "ramp", "spike", "random_walk")
DEMAND_KEYS = (
    "model",
    "kind",
    "jobs",
    "to_jobs",
    "peak_jobs",
    "peak_epoch",
    "peak_epochs",
    "step",
    "max_jobs",
    "tokens_in",
    "tokens_out",
    "reference_price_per_token",
    "sensitivity_bps",
    "shocks",
)
SHOCK_KEYS = ("from_epoch", "to_epoch", "factor")
MAX_SHOCK_FACTOR = 1000  # a shock multiplies a demand's jobs by at most this (the result capped at MAX_JOBS)
MAX_SHOCKS = 100  # shocks of one demand
DEMAND_KIND_KEYS = {
    "constant": (),
    "ramp": ("to_jobs",),
    "spike": ("peak_jobs", "peak_epoch", "peak_epochs"),
    "random_walk": ("step", "max_jobs"),
}
ALL_DEMAND_KIND_KEYS = tuple(key for keys in DEMAND_KIND_KEYS.values() for key in keys)
MAX_JOBS = 1_000  # jobs one client asks of one model in one epoch
MAX_EPOCH_JOBS = 10_000  # jobs of all clients in one epoch (they settle in the epoch's last block)
MAX_TOKENS_PER_JOB = 10_000_000  # tokens in (or out) of one simulated job
MAX_SENSITIVITY_BPS = 1_000_000  # demand falls by at most 100 times the relative price rise


@dataclass(frozen=True)
class ValidatorSpec:
    """One simulated provider: its stake, price strategy and schedule."""

    name: str
    stake: int
    strategy: str
    true_cost: int = 0
    noise_bps: int = 0
    price: int = 0
    denom: str = "ngonka"
    low: int = 1
    high: int = MAX_NGONKA - 1
    join_epoch: int = 0
    leave_epoch: int | None = None
    vote_every: int = 1
    group: str = ""  # cartel: its group; sybil: the name of the stake it was split from
    target_bps: int = 0  # cartel: how far it aims to move the price, in basis points of the price
    direction: str = "up"  # cartel: "up" or "down"

    def is_genesis(self) -> bool:
        """True if the validator is bonded at genesis."""
        return self.join_epoch == 0

    def is_active(self, epoch: int) -> bool:
        """True if the validator is bonded (or bonding) during `epoch` and has not left."""
        return self.join_epoch <= epoch and (self.leave_epoch is None or epoch < self.leave_epoch)

    def is_validator_in(self, epoch: int) -> bool:
        """True if the validator has power during `epoch` (a joiner from the epoch after it bonds,
        a leaver until the end of the epoch in which it unbonds)."""
        joined = self.is_genesis() or self.join_epoch < epoch
        return joined and (self.leave_epoch is None or epoch <= self.leave_epoch)


@dataclass(frozen=True)
class ProposalSpec:
    """A governance event: a proposal submitted in the first block of `at_epoch`, voted in the next."""

    at_epoch: int
    proposer: str
    kind: str
    id: str
    units_of_compute_per_token: int | None
    deposit: int | None  # None: the chain's min_deposit
    votes: tuple[tuple[str, str], ...]  # (validator name, option), in file order


@dataclass(frozen=True)
class DemandSpec:
    """What one client asks of one model each epoch: how many jobs (before the price), their tokens,
    and how much fewer jobs it asks when the price per token is above its reference."""

    model: str
    kind: str  # constant | ramp | spike | random_walk
    jobs: int  # constant: every epoch; ramp: in epoch 0; spike: outside the peak; random_walk: in epoch 0
    tokens_in: int
    tokens_out: int
    to_jobs: int = 0  # ramp: in the last epoch
    peak_jobs: int = 0  # spike: during the peak
    peak_epoch: int = 0  # spike: its first epoch
    peak_epochs: int = 1  # spike: its length
    step: int = 0  # random_walk: the largest change from one epoch to the next
    max_jobs: int = MAX_JOBS  # random_walk: its ceiling (its floor is 0)
    reference_price_per_token: int | None = None  # None: the price never lowers the demand
    sensitivity_bps: int = 0  # demand falls by sensitivity × (price − reference) / reference
    shocks: tuple[Shock, ...] = ()  # demand shocks: the jobs multiplied by a factor over a span of epochs

    def highest_jobs(self) -> int:
        """The most jobs this demand can ask in one epoch."""
        highest = max(self.jobs, self.to_jobs, self.peak_jobs, self.max_jobs if self.kind == "random_walk" else 0)
        for shock in self.shocks:
            highest = max(highest, min(MAX_JOBS, floor(highest * shock.factor)))
        return highest


@dataclass(frozen=True)
class Shock:
    """A demand shock: from `from_epoch` to `to_epoch` (both included) a demand asks `floor(jobs × factor)`
    jobs (at most MAX_JOBS; overlapping shocks multiply)."""

    from_epoch: int
    to_epoch: int
    factor: Fraction


@dataclass(frozen=True)
class ClientSpec:
    """A simulated requester: its escrow, funded in epoch 0, and its demand per model."""

    name: str
    escrow: int
    demand: tuple[DemandSpec, ...]


@dataclass(frozen=True)
class Scenario:
    """A whole simulation: chain params, seed, length, validators and governance events."""

    path: str
    seed: int
    epochs: int
    epoch_length: int
    default_unit_of_compute_price: int
    chain_id: str
    description: str
    validators: tuple[ValidatorSpec, ...] = field(default_factory=tuple)
    proposals: tuple[ProposalSpec, ...] = field(default_factory=tuple)
    min_deposit: int = DEFAULT_PARAMS.min_deposit
    voting_period: int = DEFAULT_PARAMS.epoch_length  # one epoch, as load_scenario defaults it
    chain_params: tuple[tuple[str, Any], ...] = ()  # the [params] table, sorted by name
    vote_mode: str = DEFAULT_PARAMS.vote_mode
    clients: tuple[ClientSpec, ...] = ()

    @cached_property
    def params(self) -> Params:
        """The chain params of the scenario's genesis: its own, its [params], the chain's defaults for the others
        (made once per scenario: the in-process engine reads them every block)."""
        return Params(
            **dict(self.chain_params),
            epoch_length=self.epoch_length,
            default_unit_of_compute_price=self.default_unit_of_compute_price,
            min_deposit=self.min_deposit,
            voting_period=self.voting_period,
            max_deposit_period=self.voting_period,
            max_validators=max(DEFAULT_PARAMS.max_validators, len(self.validators)),  # every provider validates
            vote_mode=self.vote_mode,
        )

    def deposit_of(self, proposal: ProposalSpec) -> int:
        """The deposit a proposal is submitted with."""
        return self.min_deposit if proposal.deposit is None else proposal.deposit


class _Locator:
    """Finds the line of a key in TOML text, for error messages.

    Lines inside multi-line strings are blanked first, so a `[` or `key =` written inside a string
    is never taken for a table header or a key.
    """

    def __init__(self, text: str) -> None:
        self.lines = _blank_multiline_strings(text.splitlines())

    def _header_lines(self, table: str) -> list[int]:
        """0-based lines of the `[[table]]` (or `[table]`) headers."""
        pattern = re.compile(rf"^\s*\[\[?\s*{re.escape(table)}\s*\]\]?")
        return [i for i, line in enumerate(self.lines) if pattern.match(line)]

    def line_of(self, key: str, table: str | None = None, index: int = 0) -> int | None:
        """1-based line of `key` at the top level or in the index-th `[[table]]`, else of the nearest
        header that holds it; None if the text never mentions it."""
        start, end = 0, len(self.lines)
        if table is not None:
            headers = self._header_lines(table)
            index = max(index, 0)  # -1: the one [table] of that name
            if index >= len(headers):
                return self.line_of(table)
            start = headers[index]
            end = next((i for i in range(start + 1, end) if self.lines[i].lstrip().startswith("[")), end)
        else:
            end = next((i for i, line in enumerate(self.lines) if line.lstrip().startswith("[")), end)
        quoted = re.escape(key)
        pattern = re.compile(rf"""^\s*(?:{quoted}|"{quoted}"|'{quoted}')\s*=""")
        for i in range(start, end):
            if pattern.match(self.lines[i]):
                return i + 1
        if table is not None:
            return start + 1
        headers = self._header_lines(key)
        return headers[0] + 1 if headers else None


def _blank_multiline_strings(lines: list[str]) -> list[str]:
    """The lines with the inside of every multi-line string replaced by empty lines."""
    out, delimiter = [], None
    for line in lines:
        if delimiter is not None:
            out.append("")
            if line.count(delimiter) % 2 == 1:
                delimiter = None
            continue
        out.append(line)
        for quotes in ('"""', "'''"):
            if line.count(quotes) % 2 == 1:
                delimiter = quotes
                break
    return out


class _Checker:
    """Typed reads of scenario values that raise ScenarioError with file, line and key."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.locator = _Locator(text)

    def fail(
        self, message: str, key: str, table: str | None = None, index: int = 0, name: str | None = None
    ) -> ScenarioError:
        """A ScenarioError located at `key` (and named `name`, if given, else by its table and index)."""
        line = self.locator.line_of(key, table, index)
        where = f"{self.path}:{line}" if line else self.path
        if name is None:
            name = key if not table else f"{table}.{key}" if index < 0 else f"{table}[{index}].{key}"
        return ScenarioError(f"{where}: {name} {message}")

    def integer(
        self,
        data: dict[str, Any],
        key: str,
        *,
        minimum: int,
        maximum: int = MAX_NGONKA - 1,
        default: int | None = None,
        table: str | None = None,
        index: int = 0,
        name: str | None = None,
    ) -> int:
        """An integer in [minimum, maximum]; `default` when absent (required if None); errors named `name`
        if given."""
        if key not in data:
            if default is None:
                raise self.fail(f"is required (an integer ≥ {minimum})", key, table, index, name)
            return default
        value = data[key]
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
            bound = f"≥ {minimum}" if maximum >= MAX_NGONKA - 1 else f"between {minimum} and {maximum}"
            raise self.fail(f"must be an integer {bound}, got {_show(value)}", key, table, index, name)
        return value

    def string(
        self, data: dict[str, Any], key: str, *, default: str | None = None, table: str | None = None, index: int = 0
    ) -> str:
        """A string; `default` when absent (required if None)."""
        if key not in data:
            if default is None:
                raise self.fail("is required (a string)", key, table, index)
            return default
        value = data[key]
        if not isinstance(value, str):
            raise self.fail(f"must be a string, got {_show(value)}", key, table, index)
        return value

    def only(self, data: dict[str, Any], allowed: tuple[str, ...], table: str | None = None, index: int = 0) -> None:
        """Refuse keys outside `allowed`."""
        for key in data:
            if key not in allowed:
                raise self.fail(f"is not a known key; expected one of: {', '.join(allowed)}", key, table, index)


def _show(value: Any) -> str:
    """A value as TOML-ish text for an error message."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def compute_scenario_chain_id(text: str) -> str:
    """The chain id of a scenario that names none: `uoc-sim-` and 12 hex digits of the sha256 of its text,
    so two scenarios never share one and the same scenario always has the same (wherever its file is)."""
    return f"uoc-sim-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def read_scenario_data(text: str, path: str = "<scenario>") -> dict[str, Any]:
    """The TOML tables of scenario text, unchecked."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        where = f"{path}:{match.group(1)}" if match else path
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ScenarioError(f"{where}: not valid TOML: {reason}") from None


def parse_scenario(text: str, path: str = "<scenario>", data: dict[str, Any] | None = None) -> Scenario:
    """Parse and check scenario TOML text (or `data`, its tables as edited by --set and --sweep: errors
    still point at the text's lines)."""
    if data is None:
        data = read_scenario_data(text, path)
    check = _Checker(path, text)
    check.only(data, TOP_KEYS)
    raw_validators = data.get("validators")
    if (
        not isinstance(raw_validators, list)
        or not raw_validators
        or not all(isinstance(v, dict) for v in raw_validators)
    ):
        raise check.fail("must be at least one [[validators]] table", "validators")
    epochs = check.integer(data, "epochs", minimum=1, maximum=1_000_000)
    parsed = [(i, member) for i, v in enumerate(raw_validators) for member in _parse_validator(check, v, i, epochs)]
    validators = tuple(member for _, member in parsed)
    names = [v.name for v in validators]
    for k, name in enumerate(names):
        if name in names[:k]:
            raise check.fail(
                f'"{name}" is used by another validator (a sybil N is split into N-1 … N-count); names must be unique',
                "name",
                "validators",
                parsed[k][0],
            )
    _check_cartels(check, parsed)
    if not any(v.is_genesis() for v in validators):
        raise check.fail("must include at least one validator bonded at genesis (no join_epoch)", "validators")
    epoch_length = check.integer(data, "epoch_length", minimum=1, maximum=100_000, default=DEFAULT_PARAMS.epoch_length)
    raw_proposals = data.get("proposals", [])
    if not isinstance(raw_proposals, list) or not all(isinstance(p, dict) for p in raw_proposals):
        raise check.fail("must be [[proposals]] tables", "proposals")
    by_name = {v.name: v for v in validators}
    proposals = tuple(_parse_proposal(check, p, i, epochs, by_name) for i, p in enumerate(raw_proposals))
    for i, proposal in enumerate(proposals):
        riders = [
            n for n in (proposal.proposer, *(name for name, _ in proposal.votes)) if by_name[n].strategy == "free_rider"
        ]
        if riders:
            raise check.fail(
                f"names {riders[0]}, a free_rider: a free rider takes no part in governance", "proposer", "proposals", i
            )
    if proposals and epoch_length < 2:
        raise check.fail("must be at least 2 when the scenario has proposals (submit, then vote)", "epoch_length")
    min_deposit = check.integer(data, "min_deposit", minimum=1, maximum=2**53, default=DEFAULT_PARAMS.min_deposit)
    for i, proposal in enumerate(proposals):
        if proposal.votes and proposal.deposit is not None and proposal.deposit < min_deposit:
            raise check.fail(
                f"cannot be cast: a deposit of {proposal.deposit} is below min_deposit {min_deposit}, "
                "so the proposal never reaches its voting period",
                "votes",
                "proposals",
                i,
            )
    return Scenario(
        path=path,
        seed=check.integer(data, "seed", minimum=0, maximum=2**64 - 1, default=0),
        epochs=epochs,
        epoch_length=epoch_length,
        default_unit_of_compute_price=check.integer(
            data, "default_unit_of_compute_price", minimum=1, default=DEFAULT_PARAMS.default_unit_of_compute_price
        ),
        chain_id=check.string(data, "chain_id", default=compute_scenario_chain_id(text)),
        description=check.string(data, "description", default=""),
        validators=validators,
        proposals=proposals,
        min_deposit=min_deposit,
        voting_period=check.integer(data, "voting_period", minimum=1, maximum=1_000_000, default=epoch_length),
        chain_params=_parse_params(check, data.get("params", {})),
        vote_mode=_parse_vote_mode(check, data),
        clients=_parse_clients(check, data.get("clients", []), epochs, proposals),
    )


def _parse_clients(
    check: _Checker, data: Any, epochs: int, proposals: tuple[ProposalSpec, ...]
) -> tuple[ClientSpec, ...]:
    """Check the [[clients]] tables and their [[clients.demand]] ones: unique names, models that some
    proposal registers, and at most MAX_EPOCH_JOBS jobs asked in any epoch."""
    if not isinstance(data, list) or not all(isinstance(c, dict) for c in data):
        raise check.fail("must be [[clients]] tables", "clients")
    registered = {p.id for p in proposals if p.kind == "register_model"}
    clients: list[ClientSpec] = []
    demand_index = 0  # the index of a [[clients.demand]] header in the file, to locate its errors
    for i, raw in enumerate(data):
        t = "clients"
        check.only(raw, CLIENT_KEYS, t, i)
        name = check.string(raw, "name", table=t, index=i)
        if not NAME_PATTERN.match(name):
            raise check.fail(
                f"must be 1-32 characters of a-z, 0-9, '_' or '-', starting with a letter or digit; got {_show(name)}",
                "name",
                t,
                i,
            )
        if name in (c.name for c in clients):
            raise check.fail(f"{_show(name)} is used by another client; names must be unique", "name", t, i)
        escrow = check.integer(raw, "escrow", minimum=1, maximum=2**53, table=t, index=i)
        raw_demand = raw.get("demand")
        if not isinstance(raw_demand, list) or not raw_demand or not all(isinstance(d, dict) for d in raw_demand):
            raise check.fail("must be at least one [[clients.demand]] table", "demand", t, i)
        demand: list[DemandSpec] = []
        for j, entry in enumerate(raw_demand):
            spec = _parse_demand(check, entry, demand_index, f"clients[{i}].demand[{j}]", epochs, registered)
            if spec.model in (d.model for d in demand):
                raise check.fail(
                    f"{_show(spec.model)} has another [[clients.demand]] of this client; one per model",
                    "model",
                    "clients.demand",
                    demand_index,
                    f"clients[{i}].demand[{j}].model",
                )
            demand.append(spec)
            demand_index += 1
        clients.append(ClientSpec(name, escrow, tuple(demand)))
    highest = sum(d.highest_jobs() for c in clients for d in c.demand)
    if highest > MAX_EPOCH_JOBS:
        raise check.fail(
            f"can ask up to {highest} jobs in one epoch; at most {MAX_EPOCH_JOBS} (they settle in the epoch's last "
            "block)",
            "clients",
        )
    return tuple(clients)


def _parse_demand(
    check: _Checker, data: dict[str, Any], index: int, where: str, epochs: int, registered: set[str]
) -> DemandSpec:
    """Check one [[clients.demand]] table (the index-th in the file, named `where` in errors)."""
    t = "clients.demand"

    def fail(message: str, key: str) -> ScenarioError:
        return check.fail(message, key, t, index, f"{where}.{key}")

    def integer(key: str, minimum: int, maximum: int, default: int | None = None) -> int:
        return check.integer(
            data, key, minimum=minimum, maximum=maximum, default=default, table=t, index=index, name=f"{where}.{key}"
        )

    for key in data:
        if key not in DEMAND_KEYS:
            raise fail(f"is not a known key; expected one of: {', '.join(DEMAND_KEYS)}", key)
    try:
        model = parse_model_id(data.get("model"), "model")
    except ChainError as exc:
        raise fail(str(exc).removeprefix("model "), "model") from None
    if model not in registered:
        raise fail(f"{_show(model)} is never registered by a [[proposals]] of this scenario, so it never runs", "model")
    if "kind" not in data:
        raise fail(f"is required (one of {', '.join(DEMAND_KINDS)})", "kind")
    kind = data["kind"]
    if kind not in DEMAND_KINDS:
        raise fail(f"must be one of {', '.join(DEMAND_KINDS)}; got {_show(kind)}", "kind")
    for key in ALL_DEMAND_KIND_KEYS:
        if key in data and key not in DEMAND_KIND_KEYS[kind]:
            raise fail(f'does not apply to kind "{kind}"', key)
    spec: dict[str, Any] = {
        "model": model,
        "kind": kind,
        "jobs": integer("jobs", 0, MAX_JOBS),
        "tokens_in": integer("tokens_in", 0, MAX_TOKENS_PER_JOB),
        "tokens_out": integer("tokens_out", 0, MAX_TOKENS_PER_JOB),
    }
    if spec["tokens_in"] + spec["tokens_out"] == 0:
        raise fail("and tokens_out are both 0: a job uses at least one token", "tokens_in")
    if kind == "ramp":
        spec["to_jobs"] = integer("to_jobs", 0, MAX_JOBS)
    elif kind == "spike":
        spec["peak_jobs"] = integer("peak_jobs", 0, MAX_JOBS)
        spec["peak_epoch"] = integer("peak_epoch", 0, epochs - 1)
        spec["peak_epochs"] = integer("peak_epochs", 1, epochs - spec["peak_epoch"], default=1)
    elif kind == "random_walk":
        spec["step"] = integer("step", 1, MAX_JOBS)
        spec["max_jobs"] = integer("max_jobs", max(spec["jobs"], 1), MAX_JOBS, default=MAX_JOBS)
    if "reference_price_per_token" in data:
        spec["reference_price_per_token"] = integer("reference_price_per_token", 1, MAX_NGONKA - 1)
        spec["sensitivity_bps"] = integer("sensitivity_bps", 0, MAX_SENSITIVITY_BPS, default=10_000)
    elif "sensitivity_bps" in data:
        raise fail("needs reference_price_per_token: the price above which the demand falls", "sensitivity_bps")
    if "shocks" in data:
        spec["shocks"] = _parse_shocks(data["shocks"], epochs, fail)
    return DemandSpec(**spec)


def _parse_shocks(data: Any, epochs: int, fail: Callable[[str, str], ScenarioError]) -> tuple[Shock, ...]:
    """Check a demand's `shocks = [{from_epoch, to_epoch, factor}, …]` (errors name shocks[n].key)."""
    if not isinstance(data, list) or len(data) > MAX_SHOCKS or not all(isinstance(s, dict) for s in data):
        raise fail(f"must be a list of at most {MAX_SHOCKS} tables {{from_epoch, to_epoch, factor}}", "shocks")
    shocks = []
    for n, entry in enumerate(data):
        where = f"shocks[{n}]"
        for key in SHOCK_KEYS:
            if key not in entry:
                raise fail(f"{where}.{key} is required", "shocks")
        for key in entry:
            if key not in SHOCK_KEYS:
                raise fail(f"{where}.{key} is not a known key; expected one of: {', '.join(SHOCK_KEYS)}", "shocks")
        start, end, factor = entry["from_epoch"], entry["to_epoch"], entry["factor"]
        if not isinstance(start, int) or isinstance(start, bool) or not 0 <= start < epochs:
            raise fail(
                f"{where}.from_epoch must be an integer between 0 and {epochs - 1}, got {_show(start)}", "shocks"
            )
        if not isinstance(end, int) or isinstance(end, bool) or not start <= end < epochs:
            raise fail(
                f"{where}.to_epoch must be an integer between from_epoch ({start}) and {epochs - 1}, got {_show(end)}",
                "shocks",
            )
        if isinstance(factor, int) and not isinstance(factor, bool):
            factor = str(factor)
        if not is_decimal(factor) or Fraction(factor) > MAX_SHOCK_FACTOR:
            raise fail(
                f'{where}.factor must be a decimal string (or an integer) from "0" to {MAX_SHOCK_FACTOR}, such as '
                f'"2.5", got {_show(entry["factor"])}',
                "shocks",
            )
        shocks.append(Shock(start, end, Fraction(factor)))
    return tuple(shocks)


def _parse_params(check: _Checker, data: Any) -> tuple[tuple[str, Any], ...]:
    """Check the [params] table: chain params by name (those the scenario does not set otherwise),
    each checked as genesis checks it, and together."""
    if not isinstance(data, dict):
        raise check.fail("must be a [params] table of chain params", "params")
    declared = {f.name: f for f in fields(Params) if f.name not in TOP_LEVEL_PARAMS}
    for key, value in data.items():
        if key in TOP_LEVEL_PARAMS:
            raise check.fail("is a top-level key of the scenario (or computed), not a [params] one", key, "params", -1)
        check.only({key: value}, tuple(declared), "params", -1)
        try:
            declared[key].metadata["validator"].check(value, key)
        except InvalidGenesis as exc:
            raise check.fail(str(exc).removeprefix(f"{key} "), key, "params", -1) from None
    try:
        Params(**data)
    except InvalidGenesis as exc:
        key, _, reason = str(exc).removeprefix("genesis.params.").partition(" ")
        raise check.fail(reason, key if key in data else "params", "params", -1) from None
    return tuple(sorted(data.items()))


def compute_sybil_members(spec: ValidatorSpec, count: int) -> tuple[ValidatorSpec, ...]:
    """A sybil's validators `name-1` … `name-count`, its stake split evenly (the first ones take the
    remainder), each voting its price, with `group` its name."""
    share, extra = divmod(spec.stake, count)
    return tuple(
        replace(spec, name=f"{spec.name}-{k + 1}", stake=share + (k < extra), group=spec.name) for k in range(count)
    )


def _check_cartels(check: _Checker, validators: list[tuple[int, ValidatorSpec]]) -> None:
    """The members of one cartel group aim at one target: the same target_bps and direction."""
    first: dict[str, ValidatorSpec] = {}
    for i, spec in validators:
        if spec.strategy != "cartel":
            continue
        leader = first.setdefault(spec.group, spec)
        if (spec.target_bps, spec.direction) != (leader.target_bps, leader.direction):
            raise check.fail(
                f"{_show(spec.group)} aims at {spec.direction} {spec.target_bps} bps, but its member {leader.name} at "
                f"{leader.direction} {leader.target_bps} bps; a group has one target",
                "group",
                "validators",
                i,
            )


def _parse_vote_mode(check: _Checker, data: dict[str, Any]) -> str:
    """The scenario's vote_mode: "open" (the default) or "commit_reveal"."""
    mode = check.string(data, "vote_mode", default=DEFAULT_PARAMS.vote_mode)
    if mode not in VOTE_MODES:
        raise check.fail(f"must be one of {', '.join(VOTE_MODES)}, got {_show(mode)}", "vote_mode")
    return mode


def _parse_proposal(
    check: _Checker, data: dict[str, Any], i: int, epochs: int, validators: dict[str, ValidatorSpec]
) -> ProposalSpec:
    """Check one [[proposals]] table."""
    t = "proposals"
    check.only(data, PROPOSAL_KEYS, t, i)
    at_epoch = check.integer(data, "at_epoch", minimum=0, maximum=epochs - 1, table=t, index=i)
    proposer = check.string(data, "proposer", table=t, index=i)
    if proposer not in validators:
        raise check.fail(f"{_show(proposer)} is not a validator of this scenario", "proposer", t, i)
    kind = check.string(data, "kind", table=t, index=i)
    if kind not in PROPOSAL_KINDS:
        raise check.fail(f"must be one of {', '.join(PROPOSAL_KINDS)}; got {_show(kind)}", "kind", t, i)
    try:
        model_id = parse_model_id(data.get("id"), "id")
    except ChainError as exc:
        raise check.fail(str(exc).removeprefix("id "), "id", t, i) from None
    units = None
    if kind == "register_model":
        units = check.integer(data, "units_of_compute_per_token", minimum=1, table=t, index=i)
    elif "units_of_compute_per_token" in data:
        raise check.fail('does not apply to kind "remove_model"', "units_of_compute_per_token", t, i)
    deposit = check.integer(data, "deposit", minimum=1, maximum=2**53, default=0, table=t, index=i) or None
    raw_votes = data.get("votes", {})
    if not isinstance(raw_votes, dict):
        raise check.fail('must be an inline table such as { alice = "yes" }', "votes", t, i)
    votes = []
    for name, option in raw_votes.items():
        if name not in validators:
            raise check.fail(f"names {_show(name)}, who is not a validator of this scenario", "votes", t, i)
        if option not in VOTE_OPTIONS:
            options = ", ".join(VOTE_OPTIONS)
            raise check.fail(f"{name} = {_show(option)}: the option must be one of {options}", "votes", t, i)
        if not validators[name].is_validator_in(at_epoch):
            raise check.fail(f"{name} has no power in epoch {at_epoch}, so it cannot vote then", "votes", t, i)
        votes.append((name, option))
    return ProposalSpec(at_epoch, proposer, kind, model_id, units, deposit, tuple(votes))


def _parse_validator(check: _Checker, data: dict[str, Any], i: int, epochs: int) -> tuple[ValidatorSpec, ...]:
    """Check one [[validators]] table: its validator, or a sybil's validators."""
    t = "validators"
    check.only(data, VALIDATOR_KEYS, t, i)
    name = check.string(data, "name", table=t, index=i)
    if not NAME_PATTERN.match(name):
        raise check.fail(
            f"must be 1-32 characters of a-z, 0-9, '_' or '-', starting with a letter or digit; got {_show(name)}",
            "name",
            t,
            i,
        )
    strategy = check.string(data, "strategy", table=t, index=i)
    if strategy not in STRATEGIES:
        raise check.fail(f"must be one of {', '.join(STRATEGIES)}; got {_show(strategy)}", "strategy", t, i)
    for key in ALL_STRATEGY_KEYS:
        if key in data and key not in STRATEGY_KEYS[strategy]:
            raise check.fail(f'does not apply to strategy "{strategy}"', key, t, i)
    spec: dict[str, Any] = {
        "name": name,
        "strategy": strategy,
        "stake": check.integer(data, "stake", minimum=1, maximum=2**53, table=t, index=i),
        "join_epoch": check.integer(data, "join_epoch", minimum=0, maximum=epochs - 1, default=0, table=t, index=i),
        "vote_every": check.integer(data, "vote_every", minimum=1, maximum=1_000_000, default=1, table=t, index=i),
    }
    if "leave_epoch" in data:
        spec["leave_epoch"] = check.integer(
            data, "leave_epoch", minimum=spec["join_epoch"] + 1, maximum=epochs, table=t, index=i
        )
    if strategy == "honest":
        spec["true_cost"] = check.integer(data, "true_cost", minimum=1, table=t, index=i)
        spec["noise_bps"] = check.integer(data, "noise_bps", minimum=0, maximum=9_999, default=0, table=t, index=i)
        highest = spec["true_cost"] * (10_000 + spec["noise_bps"]) // 10_000
        if highest >= MAX_NGONKA:
            raise check.fail(
                f"with noise_bps {spec['noise_bps']} can vote {highest} ngonka, over the limit of 2^63 - 1 ngonka",
                "true_cost",
                t,
                i,
            )
    elif strategy in ("fixed", "sybil"):
        spec["price"] = check.integer(data, "price", minimum=1, table=t, index=i)
        spec["denom"] = check.string(data, "denom", default="ngonka", table=t, index=i)
        if spec["denom"] not in DENOMS:
            raise check.fail(f"must be one of {', '.join(DENOMS)}; got {_show(spec['denom'])}", "denom", t, i)
        try:
            to_ngonka(spec["price"], spec["denom"])
        except MoneyError as exc:
            raise check.fail(f"with denom {_show(spec['denom'])}: {exc}", "price", t, i) from None
    elif strategy == "extreme":
        spec["low"] = check.integer(data, "low", minimum=1, default=1, table=t, index=i)
        spec["high"] = check.integer(data, "high", minimum=1, default=MAX_NGONKA - 1, table=t, index=i)
    elif strategy == "cartel":
        spec["group"] = check.string(data, "group", table=t, index=i)
        if not NAME_PATTERN.match(spec["group"]):
            raise check.fail(
                f"must be 1-32 characters of a-z, 0-9, '_' or '-'; got {_show(spec['group'])}", "group", t, i
            )
        spec["direction"] = check.string(data, "direction", table=t, index=i)
        if spec["direction"] not in DIRECTIONS:
            raise check.fail(
                f"must be one of {', '.join(DIRECTIONS)}; got {_show(spec['direction'])}", "direction", t, i
            )
        top = MAX_CARTEL_TARGET_BPS if spec["direction"] == "up" else 9_999
        spec["target_bps"] = check.integer(data, "target_bps", minimum=1, maximum=top, table=t, index=i)
    if strategy == "sybil":
        count = check.integer(data, "count", minimum=2, maximum=MAX_SYBILS, table=t, index=i)
        if spec["stake"] < count:
            raise check.fail(f"must be at least count ({count}): each sybil validator needs stake ≥ 1", "stake", t, i)
        if len(f"{name}-{count}") > 32:
            raise check.fail(f"with count {count} makes names ({name}-{count}) over 32 characters", "name", t, i)
        return compute_sybil_members(ValidatorSpec(**spec), count)
    return (ValidatorSpec(**spec),)


def read_scenario_text(path: str | Path) -> str:
    """A scenario file's text."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read the scenario: {exc}") from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file."""
    return parse_scenario(read_scenario_text(path), str(path))
