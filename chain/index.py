"""The reference index: a Compute-Finance-style price index over the active models, robust to outliers.

Governance (`chain.tx.IndexConfig`) sets tiers and their weights (exact fractions summing to 1), a
reference workload (tokens in and out), the band k and each model's tier. At each epoch boundary,
after the models' activation:

- a member is a model that is active this epoch and assigned a tier; its cost is the reference
  workload at its price per token, `(in + out) × units_of_compute_per_token × unit price` (a token
  in and a token out cost the same: the registry has one price per token, as usage bills it);
- a tier's value is its members' costs clipped to `[median / k, k × median]` (the lower median,
  an element of the tier) and then averaged, exactly (`compute_capped_mean`);
- the index's cost is `Σ weight × tier value`, and its value is `100 × cost / baseline cost`: the
  baseline is the cost of the first epoch the index is computed in, frozen until an IndexConfig
  with `baseline: reset` applies (the index is then 100 again).

Every member's cost is the same multiple `(in + out) × unit price` of its units, and clipping and
the mean commute with a positive multiple, so the tiers are kept in units and recomputed only when
their members, their units or k change: an epoch that changes none of them reads O(tiers) entries,
whatever the number of models or the length of the history.

State layout (rationals are `"p/q"` text, exact):

- `icfg/config` -> {"tiers": {tier: weight}, "workload": {"in", "out"}, "cap", "assigned": {tier: models}}:
  the config governance set (applied when a proposal passes)
- `icfg/changed` -> {"reset", "proposals"}: the config changed since the last boundary
- `iassign/<model>` -> tier: the tier governance assigned to a model
- `ichg/<model>` -> 1: a model whose tier changed since the last boundary
- `imodel/<model>` -> {"tier", "units"}: the index's members this epoch
- `imem/<tier>/<model>` -> units: the members of a tier (one key range per tier)
- `itier/<tier>` -> {"members", "median", "capped_mean", "clipped_low", "clipped_high"}: a tier in units
  (a tier without members keeps its last capped mean)
- `istate/current` -> {"config", "registry_version", "revision", "baseline": {"epoch", "cost"} | null}:
  the config in force, the registry change log read so far, the reconstitution counter, the baseline
- `ihist/<epoch:012d>` -> the index of an epoch: value, cost, unit price, stale, its tiers
- `irecon/<revision:012d>` -> a reconstitution: the models added, removed, re-tiered or re-priced and the
  config changes at an epoch boundary, with the index before and after
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from . import rules
from .encoding import thaw
from .errors import InvalidTx
from .store import State
from .tx import NO_TIER, IndexConfig, compute_index_config_field_error

INDEX_BASE = 100  # the index's value at its baseline epoch
DEFAULT_WORKLOAD = {"in": 1000, "out": 500}  # Compute Finance's reference workload
DEFAULT_CAP = "2"
DECIMAL_PLACES = 18  # places of the decimal strings the API shows (truncated; the exact rational beside)

# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


def compute_lower_median(values: Sequence[int]) -> int:
    """The lower median of a non-empty list: the element at (n − 1) // 2 once sorted."""
    return sorted(values)[(len(values) - 1) // 2]


def compute_clipped(value: int, median: int, cap: Fraction) -> Fraction:
    """A value clipped to [median / k, k × median]."""
    return min(max(Fraction(value), median / cap), median * cap)


def compute_capped_mean(values: Sequence[int], cap: Fraction) -> dict[str, Any]:
    """A tier's summary: its lower median, the mean of its values clipped to [median / k, k × median]
    (exact), and how many were clipped up and down."""
    median = compute_lower_median(values)
    low, high = median / cap, median * cap
    inside = [v for v in values if low <= v <= high]  # counted as they are; the others at the bound they cross
    below = sum(1 for v in values if v < low)
    above = len(values) - len(inside) - below
    total = sum(inside) + below * low + above * high
    return {
        "members": len(values),
        "median": str(Fraction(median)),
        "capped_mean": str(Fraction(total) / len(values)),
        "clipped_low": below,
        "clipped_high": above,
    }


def compute_workload_tokens(config: dict[str, Any]) -> int:
    """The tokens of the reference workload (in and out cost the same per token)."""
    return int(config["workload"]["in"]) + int(config["workload"]["out"])


def compute_model_cost(units: int, unit_price: int, tokens: int) -> int:
    """The ngonka the reference workload costs at a model's price per token."""
    return tokens * rules.compute_price_per_token(units, unit_price)


def compute_index_cost(config: dict[str, Any] | None, tiers: dict[str, Any], unit_price: int) -> Fraction | None:
    """`Σ weight × tier value` in ngonka, or None if a weighted tier has never had a member."""
    if config is None or not config["tiers"]:
        return None
    scale = compute_workload_tokens(config) * unit_price
    total = Fraction(0)
    for name, weight in config["tiers"].items():
        tier = tiers.get(name)
        if tier is None or tier["capped_mean"] is None:
            return None
        total += Fraction(weight) * Fraction(tier["capped_mean"]) * scale
    return total


def compute_index_value(cost: Fraction | None, baseline: dict[str, Any] | None) -> Fraction | None:
    """`100 × cost / baseline cost`, or None without both."""
    if cost is None or baseline is None:
        return None
    return INDEX_BASE * cost / Fraction(baseline["cost"])


def compute_decimal_text(value: Fraction | str | None, places: int = DECIMAL_PLACES) -> str | None:
    """A rational as a decimal string truncated to `places` places, trailing zeros dropped (None: None)."""
    if value is None:
        return None
    value = Fraction(value)
    sign = "-" if value < 0 else ""
    whole, rest = divmod(abs(value.numerator), value.denominator)
    digits = str(rest * 10**places // value.denominator).rjust(places, "0").rstrip("0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def compute_membership_change(old: dict[str, Any] | None, new: dict[str, Any] | None, model: str) -> dict[str, Any]:
    """One model's change: added, removed, retiered (its units may change too) or repriced."""
    if old is None:
        kind = "added"
    elif new is None:
        kind = "removed"
    else:
        kind = "retiered" if old["tier"] != new["tier"] else "repriced"
    return {
        "type": kind,
        "model": model,
        "tier_before": old["tier"] if old else None,
        "tier_after": new["tier"] if new else None,
        "units_before": old["units"] if old else None,
        "units_after": new["units"] if new else None,
    }


def compute_config_in_force(config: dict[str, Any]) -> dict[str, Any]:
    """The part of the governed config the index computes with."""
    return {"tiers": dict(config["tiers"]), "workload": dict(config["workload"]), "cap": config["cap"]}


# --------------------------------------------------------------------------------------------
# Getters
# --------------------------------------------------------------------------------------------


def get_index_config(state: State) -> dict[str, Any]:
    """The config governance set (defaults before the first IndexConfig: no tiers)."""
    config: dict[str, Any] | None = state.get("icfg", "config")
    return config or {"tiers": {}, "workload": DEFAULT_WORKLOAD, "cap": DEFAULT_CAP, "assigned": {}}


def get_index_state(state: State) -> dict[str, Any] | None:
    """The index's state at the last boundary (None before the first IndexConfig passed)."""
    current: dict[str, Any] | None = state.get("istate", "current")
    return current


def get_tier(state: State, name: str) -> dict[str, Any] | None:
    """A tier's summary in units (None if it never had a member)."""
    tier: dict[str, Any] | None = state.get("itier", name)
    return tier


def get_tier_members(state: State, name: str) -> list[tuple[str, int]]:
    """The (model, units) members of a tier, by model (one key range)."""
    return state.iterate_prefix("imem", name + "/")


def get_index_record(state: State, epoch: int) -> dict[str, Any] | None:
    """The index of an epoch."""
    record: dict[str, Any] | None = state.get("ihist", rules.compute_index_key(epoch))
    return record


def get_latest_index_record(state: State) -> dict[str, Any] | None:
    """The index of the latest epoch it was computed for (one key, read from the end of the range)."""
    rows = state.iterate("ihist", reverse=True, limit=1)
    return dict(rows[0][1]) if rows else None


def compute_index_config_error(state: State, content: IndexConfig) -> str | None:
    """Why an IndexConfig cannot apply over the config governance set: its fields do not hold together
    (`compute_index_config_field_error`), a tier that does not exist, a model not registered, a tier
    removed while models are still in it; or None."""
    error = compute_index_config_field_error(content)
    if error is not None:
        return error
    config = get_index_config(state)
    tiers = dict(content.tiers) if content.tiers is not None else dict(config["tiers"])
    if not tiers:
        return "IndexConfig.tiers: no tiers are set yet; the first IndexConfig must give them"
    counts = dict(config["assigned"])
    for model, tier in content.assign or ():
        current = state.get("iassign", model)
        if tier != NO_TIER and tier not in tiers:
            return f"IndexConfig.assign.{model}: tier {tier!r} does not exist (tiers: {', '.join(sorted(tiers))})"
        if state.get("model", model) is None and (tier != NO_TIER or current is None):
            return f"IndexConfig.assign.{model}: model {model!r} is not registered"
        if current is not None:
            counts[current] -= 1
        if tier != NO_TIER:
            counts[tier] = counts.get(tier, 0) + 1
    for name, count in sorted(counts.items()):
        if count > 0 and name not in tiers:
            return f"IndexConfig.tiers: tier {name!r} is removed but {count} model(s) are assigned to it"
    return None


def check_index_config(state: State, content: IndexConfig) -> None:
    """Refuse (InvalidTx invalid_index_config) an IndexConfig that cannot apply, when it is submitted."""
    error = compute_index_config_error(state, content)
    if error is not None:
        raise InvalidTx(error, code="invalid_index_config")


# --------------------------------------------------------------------------------------------
# State changes
# --------------------------------------------------------------------------------------------


def process_index_config(state: State, proposal_id: int, content: dict[str, Any]) -> str | None:
    """Apply a passed IndexConfig to the governed config (in force from the next boundary); return why
    it cannot apply, or None."""
    parsed = IndexConfig.parse(thaw(content), "IndexConfig")
    error = compute_index_config_error(state, parsed)
    if error is not None:
        return error
    config = get_index_config(state)
    counts = dict(config["assigned"])
    for model, tier in parsed.assign or ():
        current = state.get("iassign", model)
        if current is not None:
            counts[current] -= 1
        if tier == NO_TIER:
            state.delete("iassign", model)
        else:
            state.set("iassign", model, tier)
            counts[tier] = counts.get(tier, 0) + 1
        state.set("ichg", model, 1)
    tiers = dict(parsed.tiers) if parsed.tiers is not None else dict(config["tiers"])
    workload = config["workload"] if parsed.workload is None else {"in": parsed.workload[0], "out": parsed.workload[1]}
    state.set(
        "icfg",
        "config",
        {
            "tiers": tiers,
            "workload": workload,
            "cap": config["cap"] if parsed.cap is None else parsed.cap,
            "assigned": {name: count for name, count in sorted(counts.items()) if count > 0},
        },
    )
    changed = state.get("icfg", "changed") or {"reset": False, "proposals": []}
    reset = bool(changed["reset"]) or parsed.baseline == "reset"
    state.set("icfg", "changed", {"reset": reset, "proposals": [*changed["proposals"], proposal_id]})
    if get_index_state(state) is None:  # the registry's log before now holds no member: start reading it here
        version = rules.get_registry_version(state)
        state.set("istate", "current", {"config": None, "registry_version": version, "revision": 0, "baseline": None})
    return None


def process_member_change(state: State, model: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
    """Move a model in or out of the members and its tier's key range."""
    if old is not None:
        state.delete("imem", f"{old['tier']}/{model}")
    if new is None:
        state.delete("imodel", model)
    else:
        state.set("imodel", model, new)
        state.set("imem", f"{new['tier']}/{model}", new["units"])


def process_tier_summary(state: State, name: str, cap: Fraction) -> None:
    """Recompute a tier's summary from its members (a tier left without any keeps its capped mean)."""
    units = [u for _, u in get_tier_members(state, name)]
    if units:
        state.set("itier", name, compute_capped_mean(units, cap))
        return
    before = get_tier(state, name)
    if before is not None:
        state.set("itier", name, {**before, "members": 0, "clipped_low": 0, "clipped_high": 0})


def process_membership(state: State, index: dict[str, Any]) -> tuple[list[dict[str, Any]], set[str]]:
    """Bring the members up to date with the tiers assigned and the registry changes since the last
    boundary (each read from its key range); return the changes and the tiers they touched."""
    models: set[str] = set()
    for model, _ in state.iterate("ichg"):
        models.add(model)
        state.delete("ichg", model)
    version = rules.get_registry_version(state)
    start, end = rules.compute_index_key(index["registry_version"] + 1), rules.compute_index_key(version + 1)
    for _, entry in state.iterate("mlog", start, end):
        models.add(entry["model"])
    changes, touched = [], set()
    for model in sorted(models):
        old = state.get("imodel", model)
        old = None if old is None else dict(old)
        tier, active = state.get("iassign", model), state.get("amodel", model)
        new = None if tier is None or active is None else {"tier": tier, "units": active["units_of_compute_per_token"]}
        if old == new:
            continue
        process_member_change(state, model, old, new)
        changes.append(compute_membership_change(old, new, model))
        touched |= {m["tier"] for m in (old, new) if m is not None}
    return changes, touched


def process_index(state: State) -> None:
    """At the epoch boundary: apply the config and member changes, recompute the tiers they touch,
    record a reconstitution if any, and write the epoch's index."""
    index = get_index_state(state)
    if index is None:
        return
    epoch = rules.get_current_epoch(state)
    price = epoch["price"]
    changed = state.get("icfg", "changed")
    old_config = index["config"]
    config = compute_config_in_force(get_index_config(state)) if changed else old_config
    names = sorted(set(config["tiers"]) | set(old_config["tiers"] if old_config else ()))
    before = {name: get_tier(state, name) for name in names}
    changes, touched = process_membership(state, index)
    cap = Fraction(config["cap"])
    if old_config is None or config["cap"] != old_config["cap"]:
        touched |= set(config["tiers"])
    for name in sorted(touched):
        process_tier_summary(state, name, cap)
    for name in names:
        if name not in config["tiers"]:
            state.delete("itier", name)
    after = {name: get_tier(state, name) for name in config["tiers"]}
    cost_before, cost = compute_index_cost(old_config, before, price), compute_index_cost(config, after, price)
    baseline = index["baseline"]
    value_before = compute_index_value(cost_before, baseline)
    if cost is not None and (baseline is None or (changed and changed["reset"])):
        baseline = {"epoch": epoch["index"], "cost": str(cost)}
    value = compute_index_value(cost, baseline)
    revision = index["revision"]
    if changes or changed:
        revision += 1
        state.set(
            "irecon",
            rules.compute_index_key(revision),
            {
                "revision": revision,
                "epoch": epoch["index"],
                "height": rules.get_height(state),
                "proposals": list(changed["proposals"]) if changed else [],
                "changes": changes,
                "config_changed": bool(changed) and config != old_config,
                "rebased": baseline != index["baseline"],
                "value_before": None if value_before is None else str(value_before),
                "value_after": None if value is None else str(value),
                "cost_before": None if cost_before is None else str(cost_before),
                "cost_after": None if cost is None else str(cost),
            },
        )
        state.delete("icfg", "changed")
    version = rules.get_registry_version(state)
    state.set(
        "istate",
        "current",
        {"config": config, "registry_version": version, "revision": revision, "baseline": baseline},
    )
    process_index_record(state, epoch, config, after, cost, value, revision)


def process_index_record(
    state: State,
    epoch: dict[str, Any],
    config: dict[str, Any],
    tiers: dict[str, Any],
    cost: Fraction | None,
    value: Fraction | None,
    revision: int,
) -> None:
    """Write the epoch's index: value, cost, unit price, whether it is stale, and each tier's value."""
    scale = compute_workload_tokens(config) * epoch["price"]
    views = {}
    for name, weight in config["tiers"].items():
        tier = tiers.get(name)
        mean = None if tier is None or tier["capped_mean"] is None else Fraction(tier["capped_mean"]) * scale
        views[name] = {
            "weight": weight,
            "members": 0 if tier is None else tier["members"],
            "capped_mean": None if mean is None else str(mean),
        }
    state.set(
        "ihist",
        rules.compute_index_key(epoch["index"]),
        {
            "epoch": epoch["index"],
            "value": None if value is None else str(value),
            "cost": None if cost is None else str(cost),
            "unit_price": epoch["price"],
            "revision": revision,
            "stale": value is None or any(view["members"] == 0 for view in views.values()),
            "tiers": views,
        },
    )
