"""Dynamic per-model pricing (issue 19, item 5): a price per token that utilization moves each block.

With `pricing_mode` "voted" (the default) a settlement pays `units × the voted unit price` and this
module reads one key per block and writes nothing. With "dynamic" or "hybrid", at the end of every
block, for each active model:

- `capacity` (tokens per block) = `max(1, floor(throughput_per_nonce × total_power / power_per_nonce))`,
  with the model's `throughput_per_nonce` (or `default_throughput_per_nonce` when it has none) and
  the current epoch's total power (every validator with power serves every model);
- `utilization` = tokens settled in the last `utilization_window` blocks (this one included) /
  (capacity × utilization_window), an exact Fraction (it may exceed 1);
- inside `[utilization_band_low, utilization_band_high]` the price holds; above it the price rises
  by `ceil(price × elasticity × d)`, below it falls by the same rounded up, where `d` in (0, 1] is
  how far outside the band utilization lies (`(u − high) / (1 − high)` above, `(low − u) / low`
  below, at most 1): a move is at least 1 ngonka, so a price can always leave the floor (Gonka's
  truncation pinned every price below 50 at its floor), and at most `ceil(price × elasticity)`;
- the price never goes below `dynamic_price_floor`; in "hybrid" it is also kept within
  `[max(floor, floor(anchor × (1 − hybrid_band))), ceil(anchor × (1 + hybrid_band))]` around the
  anchor, the voted price per token (`units × unit price`) of the current epoch.

A model enters dynamic pricing at its voted price per token (held in the band); the price set at the
end of block h is the one the settlements of block h+1 pay (`get_price_per_token`). The vote stays
the governance override: `pricing_mode` is a ParamChange param, and switching it back to "voted" puts
`units × unit price` back in force from the next epoch and clears this module's state (once, at the
first block end in voted mode), so a later switch starts afresh from the voted price.

Bounded work: per block O(active models) reads and writes, plus one delete per ring entry leaving
the window (each entry is written once and deleted once); the window's sum is kept, never recomputed.

State layout (`|` joins parts: no model id holds one):

- `dprice/<model>` -> {"price", "window_tokens", "capacity"}: the price in force, the tokens settled in
  the window, the capacity per block of the last update
- `dring/<model>|<height:012d>` -> tokens settled in that block (only blocks with tokens)
- `dblock/<model>` -> tokens settled in the current block so far (moved into the ring at its end)
- `meta/dynamic_pricing` -> true while some dynamic state exists (cleared in voted mode)
"""

from __future__ import annotations

from fractions import Fraction
from math import ceil, floor
from typing import Any

from . import rules
from .money import MAX_NGONKA
from .params import Params, compute_fraction
from .store import State

MAX_PRICE = MAX_NGONKA - 1  # ngonka per token
UTILIZATION_DIGITS = 6  # decimals of utilization in reads (rounded down)


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


def is_dynamic_mode(params: Params) -> bool:
    """True if settlements pay a per-model dynamic price ("dynamic" or "hybrid")."""
    return params.pricing_mode != "voted"


def compute_capacity(throughput_per_nonce: int, total_power: int, power_per_nonce: int) -> int:
    """Tokens a block can serve of a model: `max(1, floor(throughput × total_power / power_per_nonce))`."""
    return max(1, throughput_per_nonce * total_power // power_per_nonce)


def compute_model_capacity(model: dict[str, Any], total_power: int, params: Params) -> int:
    """A model's capacity per block (its throughput_per_nonce, or the param's default without one)."""
    throughput = model.get("throughput_per_nonce") or params.default_throughput_per_nonce
    return compute_capacity(throughput, total_power, params.power_per_nonce)


def compute_utilization(window_tokens: int, capacity: int, window: int) -> Fraction:
    """Tokens settled in the window over what the window could serve."""
    return Fraction(window_tokens, capacity * window)


def compute_band_distance(utilization: Fraction, low: Fraction, high: Fraction) -> Fraction:
    """How far outside the stability band utilization lies, in [-1, 1]: 0 inside it, positive above
    (`(u − high) / (1 − high)`), negative below (`−(low − u) / low`)."""
    if utilization > high:
        return Fraction(1) if high >= 1 else min(Fraction(1), (utilization - high) / (1 - high))
    if utilization < low:
        return -min(Fraction(1), (low - utilization) / low)
    return Fraction(0)


def compute_price_step(price: int, elasticity: Fraction, distance: Fraction) -> int:
    """The size of a block's move: `ceil(price × elasticity × |distance|)`, at least 1 ngonka (0 in the band)."""
    if distance == 0:
        return 0
    return max(1, ceil(price * elasticity * abs(distance)))


def compute_hybrid_bounds(anchor: int, band: Fraction, floor_price: int) -> tuple[int, int]:
    """The hybrid price's range around the voted price per token: [max(floor, floor(a(1−b))), ceil(a(1+b))]."""
    low = max(floor_price, floor(anchor * (1 - band)))
    return low, min(MAX_PRICE, max(low, ceil(anchor * (1 + band))))


def compute_price_bounds(params: Params, anchor: int) -> tuple[int, int]:
    """The range a model's price must stay in under the params (the hybrid band only in hybrid mode)."""
    if params.pricing_mode == "hybrid":
        return compute_hybrid_bounds(anchor, compute_fraction(params.hybrid_band), params.dynamic_price_floor)
    return params.dynamic_price_floor, max(params.dynamic_price_floor, MAX_PRICE)


def compute_next_price(price: int, utilization: Fraction, params: Params, anchor: int) -> int:
    """The price after one block at this utilization: held in the band, else moved by the rounded-up
    step, then kept within the floor (and the hybrid band)."""
    distance = compute_band_distance(
        utilization, compute_fraction(params.utilization_band_low), compute_fraction(params.utilization_band_high)
    )
    step = compute_price_step(price, compute_fraction(params.price_elasticity), distance)
    moved = price + step if distance > 0 else price - step
    low, high = compute_price_bounds(params, anchor)
    return min(max(moved, low), high)


def compute_decimal_text(value: Fraction, digits: int = UTILIZATION_DIGITS) -> str:
    """A non-negative Fraction as a decimal string with `digits` decimals, rounded down ("0.333333")."""
    scaled = floor(value * 10**digits)
    whole, frac = divmod(scaled, 10**digits)
    return f"{whole}.{frac:0{digits}d}"


def compute_ring_key(model_id: str, height: int) -> str:
    """The key of a block's tokens in a model's window: `<model>|<height:012d>`."""
    return f"{model_id}|{rules.compute_index_key(height)}"


# --------------------------------------------------------------------------------------------
# Getters
# --------------------------------------------------------------------------------------------


def get_voted_price_per_token(state: State, model: dict[str, Any]) -> int:
    """A model's voted price per token this epoch: its units × the voted unit price."""
    return rules.compute_price_per_token(model["units_of_compute_per_token"], rules.get_current_epoch(state)["price"])


def get_dynamic_record(state: State, model_id: str) -> dict[str, Any] | None:
    """A model's dynamic price record, if dynamic pricing has updated it."""
    record: dict[str, Any] | None = state.get("dprice", model_id)
    return record


def get_price_per_token(state: State, model_id: str, model: dict[str, Any]) -> int:
    """The ngonka a settlement of this block pays per token of an active model: the voted price in
    voted mode, else its dynamic price (its voted price until the first update), within its bounds."""
    params = rules.get_params(state)
    voted = get_voted_price_per_token(state, model)
    if not is_dynamic_mode(params):
        return voted
    record = get_dynamic_record(state, model_id)
    low, high = compute_price_bounds(params, voted)
    return min(max(voted if record is None else record["price"], low), high)


def get_utilization(state: State, model_id: str) -> Fraction:
    """A model's utilization at the last block end (0 before the first update)."""
    record = get_dynamic_record(state, model_id)
    if record is None:
        return Fraction(0)
    return compute_utilization(record["window_tokens"], record["capacity"], rules.get_params(state).utilization_window)


# --------------------------------------------------------------------------------------------
# State changes
# --------------------------------------------------------------------------------------------


def process_settled_tokens(state: State, model_id: str, tokens: int) -> None:
    """Count a settlement's tokens in its model's current block (dynamic modes only; voted writes nothing)."""
    if tokens and is_dynamic_mode(rules.get_params(state)):
        state.set("dblock", model_id, (state.get("dblock", model_id) or 0) + tokens)


def process_window_expiry(state: State, model_id: str, oldest: int) -> int:
    """Delete a model's ring entries of blocks before `oldest`; return their tokens (oldest first,
    stopping at the first entry still in the window)."""
    removed = 0
    prefix = model_id + "|"
    end = prefix + rules.compute_index_key(oldest)
    for key, tokens in state.iterate("dring", prefix, end):
        state.delete("dring", key)
        removed += tokens
    return removed


def process_model_price(state: State, model_id: str, model: dict[str, Any], params: Params) -> None:
    """One block's update of a model: its block's tokens into the window, the expired ones out, the
    utilization measured and the price moved."""
    height = rules.get_height(state)
    record = get_dynamic_record(state, model_id)
    tokens = state.get("dblock", model_id) or 0
    if tokens:
        state.delete("dblock", model_id)
        state.set("dring", compute_ring_key(model_id, height), tokens)
    window_tokens = (0 if record is None else record["window_tokens"]) + tokens
    window_tokens -= process_window_expiry(state, model_id, height - params.utilization_window + 1)
    capacity = compute_model_capacity(model, rules.get_current_epoch(state)["total_power"], params)
    utilization = compute_utilization(window_tokens, capacity, params.utilization_window)
    price = compute_next_price(
        get_price_per_token(state, model_id, model), utilization, params, get_voted_price_per_token(state, model)
    )
    state.set("dprice", model_id, {"price": price, "window_tokens": window_tokens, "capacity": capacity})


def process_model_forget(state: State, model_id: str) -> None:
    """Delete a model's dynamic state: its record, its window and its block's tokens."""
    state.delete("dprice", model_id)
    state.delete("dblock", model_id)
    for key, _ in state.iterate_prefix("dring", model_id + "|"):
        state.delete("dring", f"{model_id}|{key}")


def process_dynamic_prices(state: State) -> None:
    """The end-of-block rule: in a dynamic mode update every active model's price (and forget models
    no longer active); in voted mode clear the dynamic state once, if any is left."""
    params = rules.get_params(state)
    if not is_dynamic_mode(params):
        if state.get("meta", "dynamic_pricing"):
            for model_id, _ in state.iterate("dprice"):
                process_model_forget(state, model_id)
            state.delete("meta", "dynamic_pricing")
        return
    if not state.get("meta", "dynamic_pricing"):
        state.set("meta", "dynamic_pricing", True)
    active = state.iterate("amodel")
    for model_id, model in active:
        process_model_price(state, model_id, model, params)
    ids = {model_id for model_id, _ in active}
    for model_id, _ in state.iterate("dprice"):
        if model_id not in ids:
            process_model_forget(state, model_id)
