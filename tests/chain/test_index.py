"""The reference index (chain/index.py): the capped mean against the tier's median, the baseline, the
reconstitution log, the stale flag, governance of its config, bad input, and its properties."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import index, rules
from chain.errors import ChainError
from chain.queries import QUERIES, QueryContext, run_query
from chain.store import MemoryStore, State
from chain.tx import (
    IndexConfig,
    MsgSubmitProposal,
    MsgVote,
    RegisterModel,
    RemoveModel,
    Tokens,
    decode_tx,
    make_body,
)
from tests.chain.test_declarations import assert_openapi_shape, assert_valid
from tests.helpers import ADDR, KEYS, Wallets, make_app, make_genesis, run_block, run_until, sign_body, store_snapshot

# --- the capped mean --------------------------------------------------------------------------

CAPPED_MEANS = [
    # (case, units, k, lower median, capped mean, clipped low, clipped high)
    ("one member counts as itself", [5], "2", 5, Fraction(5), 0, 0),
    ("no member outside the band", [10, 12, 15], "2", 12, Fraction(37, 3), 0, 0),
    ("an expensive outlier counts at k x median", [10, 12, 1000], "2", 12, Fraction(46, 3), 0, 1),
    ("the seed's case: 100 among ones counts as 2", [1, 1, 100], "2", 1, Fraction(4, 3), 0, 1),
    ("a cheap outlier counts at median / k", [1, 100, 100], "2", 100, Fraction(250, 3), 1, 0),
    ("two members: the lower median is the cheaper", [1, 100], "2", 1, Fraction(3, 2), 0, 1),
    ("k = 1: every member counts at the median", [3, 5, 9], "1", 5, Fraction(5), 1, 1),
    ("k = 3/2 in exact rationals", [2, 3, 7], "1.5", 3, Fraction(2 + 3 + Fraction(9, 2), 3), 0, 1),
    ("even count: the lower of the middle two", [1, 2, 3, 100], "2", 2, Fraction(1 + 2 + 3 + 4, 4), 0, 1),
]


@pytest.mark.parametrize(
    ("case", "units", "cap", "median", "mean", "low", "high"), CAPPED_MEANS, ids=[c[0] for c in CAPPED_MEANS]
)
def test_the_capped_mean_clips_each_member_to_k_times_the_tier_median(case, units, cap, median, mean, low, high):
    summary = index.compute_capped_mean(units, Fraction(cap))
    assert Fraction(summary["median"]) == median
    assert Fraction(summary["capped_mean"]) == mean
    assert (summary["clipped_low"], summary["clipped_high"]) == (low, high)


def seed_capped_mean(costs: list[int]) -> Fraction:
    """Compute Finance's single-pass cap: each cost capped at 2 x the tier mean, then averaged."""
    mean = Fraction(sum(costs), len(costs))
    return sum((min(Fraction(c), 2 * mean) for c in costs), Fraction(0)) / len(costs)


def test_the_median_band_binds_where_the_seeds_two_x_mean_cap_does_not():
    costs = [10, 12, 1000]  # one model 83 times the others
    assert seed_capped_mean(costs) > 230  # the seed's cap lets it pull the tier to ~20 x its typical cost
    assert Fraction(index.compute_capped_mean(costs, Fraction(2))["capped_mean"]) == Fraction(46, 3)
    assert seed_capped_mean([1, 100]) == Fraction(101, 2)  # with two members the seed's cap never binds


DECIMALS = [
    (Fraction(100), "100"),
    (Fraction(1, 2), "0.5"),
    (Fraction(1, 3), "0.333333333333333333"),
    (Fraction(9400, 87), "108.045977011494252873"),
    (Fraction(2, 3), "0.666666666666666666"),  # truncated, never rounded up
    (None, None),
]


@pytest.mark.parametrize(("value", "text"), DECIMALS)
def test_rationals_show_as_decimal_strings_truncated_to_18_places(value, text):
    assert index.compute_decimal_text(value) == text


# --- a chain with models and an index ------------------------------------------------------------

GOV = dict(min_deposit=100, max_deposit_period=4, voting_period=4, epoch_length=10)
TIERS = (("frontier", "0.3"), ("standard", "0.7"))


class Chain:
    """An app with three validators and a funded proposer, and helpers that pass proposals."""

    def __init__(self) -> None:
        self.app = make_app(make_genesis({"a": 50, "b": 30, "c": 20}, **GOV))
        self.w = Wallets()

    def submit(self, content: Any) -> int:
        run_block(self.app, [self.w.tx("e", MsgSubmitProposal(content, 100))])
        return self.app.query_all("proposals")[-1]["id"]

    def pass_(self, *contents: Any) -> None:
        """Pass each content (in one voting period) and run to the next epoch boundary."""
        pids = [self.submit(c) for c in contents]
        run_block(self.app, [self.w.tx(v, MsgVote(pid, "yes")) for pid in pids for v in ("a", "b")])
        run_until(self.app, max(self.app.query(f"proposal/{p}")["voting_end_height"] for p in pids))
        for pid in pids:
            assert self.app.query(f"proposal/{pid}")["status"] == "passed", self.app.query(f"proposal/{pid}")
        self.to_boundary()

    def to_boundary(self) -> None:
        run_until(self.app, (self.app.height // 10 + 1) * 10)

    def q(self, path: str, **params: Any) -> Any:
        return self.app.query(path, **params)


@pytest.fixture
def chain() -> Chain:
    c = Chain()
    c.pass_(*(RegisterModel(m, u) for m, u in [("m1", 10), ("m2", 12), ("m3", 100), ("m4", 1000)]))
    c.pass_(IndexConfig(tiers=TIERS, workload=Tokens(1000, 500), assign=(("m1", "standard"), ("m2", "standard"))))
    return c


def test_the_index_is_100_at_its_baseline_epoch_and_not_computed_before_a_config(chain):
    fresh = Chain()
    with pytest.raises(ChainError) as info:
        fresh.q("index")
    assert info.value.code == "not_found"
    assert fresh.q("index_health")["stale"] is True and fresh.q("index_health")["latest_epoch"] is None
    chain.pass_(IndexConfig(assign=(("m3", "frontier"),)))
    now = chain.q("index")
    assert now["baseline"]["epoch"] == now["epoch"] and now["value"] == "100"
    # standard: units 10, 12 (median 10, none clipped) = 11 x 1500 tokens x price 100; frontier 100 units
    assert Fraction(now["cost_exact"]) == Fraction(3, 10) * 100 * 150_000 + Fraction(7, 10) * 11 * 150_000
    assert [t["tier"] for t in now["tiers"]] == ["frontier", "standard"]
    assert chain.q("index_health") == {
        "latest_epoch": now["epoch"],
        "current_epoch": now["epoch"],
        "revision": 2,
        "stale": False,
        "reasons": [],
    }


def test_a_weighted_tier_without_members_leaves_the_index_uncomputed_and_stale(chain):
    record = chain.q("index")  # frontier has never had a member
    assert record["value"] is None and record["stale"] is True and record["baseline"] is None
    assert any("never had a member" in r for r in chain.q("index_health")["reasons"])


def test_each_reconstitution_records_the_change_and_the_index_before_and_after(chain):
    chain.pass_(IndexConfig(assign=(("m3", "frontier"),)))
    base = Fraction(chain.q("index")["value_exact"])
    chain.pass_(IndexConfig(assign=(("m4", "standard"),)))  # far above the standard band: counts at 2 x 12
    chain.pass_(RegisterModel("m2", 24))  # re-priced: 24 units
    chain.pass_(IndexConfig(assign=(("m1", "frontier"),)))  # re-tiered
    chain.pass_(RemoveModel("m4"))  # removed
    entries = chain.app.query_all("index_reconstitutions")
    kinds = [[(c["type"], c["model"]) for c in e["changes"]] for e in entries]
    assert kinds == [
        [("added", "m1"), ("added", "m2")],
        [("added", "m3")],
        [("added", "m4")],
        [("repriced", "m2")],
        [("retiered", "m1")],
        [("removed", "m4")],
    ]
    assert [e["revision"] for e in entries] == [1, 2, 3, 4, 5, 6]
    for before, after in zip(entries, entries[1:], strict=False):
        assert after["value_before_exact"] == before["value_after_exact"]  # the unit price has not moved
    added_m4 = entries[2]
    # standard was (10 + 12) / 2 = 11 units; with m4 (lower median 12) clipped to 2 x 12: (10 + 12 + 24) / 3
    expected = Fraction(3, 10) * 100 + Fraction(7, 10) * Fraction(46, 3)
    assert Fraction(added_m4["value_after_exact"]) == base * expected / (Fraction(3, 10) * 100 + Fraction(7, 10) * 11)
    assert added_m4["cost_after"] == index.compute_decimal_text(Fraction(added_m4["cost_after_exact"]))
    assert entries[4]["changes"][0] | {} == {
        "type": "retiered",
        "model": "m1",
        "tier_before": "standard",
        "tier_after": "frontier",
        "units_before": 10,
        "units_after": 10,
    }


def test_a_model_far_outside_its_band_moves_the_index_no_more_than_k_times_the_median(chain):
    chain.pass_(IndexConfig(assign=(("m3", "frontier"),)))
    chain.pass_(RegisterModel("huge", 10**15), RegisterModel("big", 1000))
    chain.pass_(IndexConfig(assign=(("huge", "standard"),)))
    with_huge = Fraction(chain.q("index")["cost_exact"])
    chain.pass_(IndexConfig(assign=(("huge", "-"), ("big", "standard"))))
    assert Fraction(chain.q("index")["cost_exact"]) == with_huge  # both count at exactly 2 x median


def test_a_baseline_reset_makes_the_index_100_again_and_is_recorded(chain):
    chain.pass_(IndexConfig(assign=(("m3", "frontier"),)))
    first = chain.q("index")["baseline"]["epoch"]
    chain.pass_(IndexConfig(assign=(("m4", "standard"),)))
    assert chain.q("index")["value"] != "100"
    chain.pass_(IndexConfig(baseline="reset"))
    now = chain.q("index")
    assert now["value"] == "100" and now["baseline"]["epoch"] == now["epoch"] > first
    last = chain.app.query_all("index_reconstitutions")[-1]
    assert last["rebased"] is True and last["changes"] == [] and last["value_after"] == "100"


def test_changing_k_recomputes_every_tier(chain):
    chain.pass_(IndexConfig(assign=(("m3", "frontier"), ("m4", "standard"))))
    chain.pass_(IndexConfig(cap="1"))  # every member counts at its tier's median
    standard = next(t for t in chain.q("index_tiers")["tiers"] if t["tier"] == "standard")
    assert standard["capped_mean"] == standard["median"] == str(12 * 150_000)
    assert [m["clipped"] for m in standard["members"]] == ["low", None, "high"]


def test_a_tier_whose_members_all_leave_keeps_its_last_value_and_is_flagged(chain):
    chain.pass_(IndexConfig(assign=(("m3", "frontier"),)))
    value = chain.q("index")["value"]
    chain.pass_(RemoveModel("m3"))
    now = chain.q("index")
    assert now["value"] == value and now["stale"] is True
    frontier = next(t for t in now["tiers"] if t["tier"] == "frontier")
    assert frontier["members"] == 0 and frontier["capped_mean"] is not None
    assert any("frontier" in r for r in chain.q("index_health")["reasons"])


def test_every_index_query_answers_in_the_shape_it_declares(chain):
    chain.pass_(IndexConfig(assign=(("m3", "frontier"), ("m4", "standard"))))
    chain.pass_(RemoveModel("m3"))
    for name in ("index", "index_history", "index_tiers", "index_reconstitutions", "index_health"):
        assert_openapi_shape(QUERIES[name].response, name)
        assert_valid(QUERIES[name].response, chain.q(name))


def test_the_history_holds_one_record_per_epoch_and_pages_by_epoch(chain):
    chain.pass_(IndexConfig(assign=(("m3", "frontier"),)))
    chain.to_boundary()
    epochs = [r["epoch"] for r in chain.app.query_all("index_history")]
    assert epochs == list(range(epochs[0], chain.q("epoch")["index"] + 1))
    page = chain.q("index_history", **{"pagination.limit": 1, "from_epoch": epochs[1]})
    assert [r["epoch"] for r in page["epochs"]] == [epochs[1]] and page["pagination"]["next_key"] is not None
    assert chain.q("index_history", from_epoch=epochs[1], to_epoch=epochs[1])["epochs"][0]["epoch"] == epochs[1]


def test_the_epoch_index_reads_only_the_tiers_when_nothing_changed(chain):
    """An epoch that changes no member and no config reads no member, whatever their number."""
    chain.pass_(IndexConfig(assign=(("m3", "frontier"),)))
    chain.to_boundary()
    reads: list[str] = []

    class Counting(MemoryStore):
        def get(self, space: str, key: str) -> str | None:
            reads.append(space)
            return chain.app.store.get(space, key)

        def iterate(self, space: str, *bounds: Any, **kw: Any) -> Any:
            reads.append(space)
            return chain.app.store.iterate(space, *bounds, **kw)

    state = State(Counting(), chain.app.height)
    index.process_index(state)
    assert "imem" not in reads and "imodel" not in reads and "amodel" not in reads


# --- bad input changes nothing ---------------------------------------------------------------------


def content_tx_body(content: dict[str, Any]) -> dict[str, Any]:
    message = {"@type": "MsgSubmitProposal", "content": content, "initial_deposit": {"amount": 100, "denom": "ngonka"}}
    return make_body("uoc-test", ADDR["e"], 0, []) | {"messages": [message]}


BAD_CONTENT = [  # refused when the tx decodes: each one a schema states
    ("a float weight", {"tiers": {"a": 1.0}}, "floats"),
    ("a weight that is not a decimal", {"tiers": {"a": "1/1"}}, "tiers.a"),
    ("no tiers at all", {"tiers": {}}, "tiers"),
    ("a negative workload", {"workload": {"in": -1, "out": 500}}, "workload.in"),
    ("a workload missing out", {"workload": {"in": 1}}, "workload"),
    ("a band below 1", {"cap": "0.5"}, "cap"),
    ("a bad baseline word", {"baseline": "now"}, "baseline"),
    ("nothing to change", {}, "IndexConfig changes nothing"),
    ("an unknown field", {"tiers": {"a": "1"}, "weights": {}}, "weights"),
]


@pytest.mark.parametrize(("case", "fields", "named"), BAD_CONTENT, ids=[c[0] for c in BAD_CONTENT])
def test_bad_index_config_is_refused_at_decode_naming_the_field(case, fields, named):
    raw = sign_body(KEYS["e"], content_tx_body({"@type": "IndexConfig", **fields}))
    with pytest.raises(ChainError) as info:
        decode_tx(raw)
    assert named in str(info.value)
    assert info.value.code in ("invalid_index_config", "invalid_tokens", "malformed")


def test_the_schema_states_what_the_decoder_refuses():
    schema = IndexConfig.schema()
    assert schema["minProperties"] == 2  # @type and one field
    cap = re.compile(schema["properties"]["cap"]["pattern"])
    assert [bool(cap.match(t)) for t in ("1", "1.0", "2.5", "10", "007", "0.99", "0", "0.5")] == [True] * 5 + [
        False
    ] * 3


BAD_AGAINST_STATE = [  # refused when submitted (a schema cannot state them, or they depend on the state)
    ("weights that do not sum to one", {"tiers": {"a": "0.5", "b": "0.4"}}, "IndexConfig.tiers: the weights sum"),
    ("weights above one", {"tiers": {"a": "0.5", "b": "0.6"}}, "IndexConfig.tiers: the weights sum to 11/10"),
    ("a zero weight", {"tiers": {"a": "0", "b": "1"}}, "IndexConfig.tiers.a is 0"),
    ("a bad tier name", {"tiers": {"a b": "1"}}, "IndexConfig.tiers key 'a b'"),
    ("a bad model id", {"assign": {"m 1": "standard"}}, "IndexConfig.assign key 'm 1'"),
    ("an assignment to a tier not given", {"tiers": {"a": "1"}, "assign": {"m1": "b"}}, "IndexConfig.assign.m1"),
    ("a zero workload", {"workload": {"in": 0, "out": 0}}, "IndexConfig.workload"),
    ("a tier that does not exist", {"assign": {"m3": "premium"}}, "IndexConfig.assign.m3: tier 'premium'"),
    ("an unknown model", {"assign": {"nobody": "standard"}}, "IndexConfig.assign.nobody: model"),
    ("unassigning an unknown model", {"assign": {"nobody": "-"}}, "IndexConfig.assign.nobody"),
    ("removing a tier with members", {"tiers": {"frontier": "1"}}, "tier 'standard' is removed"),
]


@pytest.mark.parametrize(("case", "fields", "named"), BAD_AGAINST_STATE, ids=[c[0] for c in BAD_AGAINST_STATE])
def test_an_index_config_that_cannot_apply_is_refused_at_submit_and_changes_nothing(chain, case, fields, named):
    content = IndexConfig.parse({"@type": "IndexConfig", **fields}, "IndexConfig")
    before = store_snapshot(chain.app.store)
    result = run_block(chain.app, [chain.w.tx("e", MsgSubmitProposal(content, 100))], expect_ok=False)
    assert [r.code for r in result.tx_results] == ["invalid_index_config"]
    assert named in result.tx_results[0].log
    after = store_snapshot(chain.app.store)
    assert {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)} == {("meta", "height")}


def test_the_first_index_config_must_give_tiers():
    fresh = Chain()
    fresh.pass_(RegisterModel("m1", 10))
    result = run_block(fresh.app, [fresh.w.tx("e", MsgSubmitProposal(IndexConfig(cap="3"), 100))], expect_ok=False)
    assert [r.code for r in result.tx_results] == ["invalid_index_config"]
    assert "IndexConfig.tiers" in result.tx_results[0].log


def test_a_passed_config_whose_model_went_away_fails_and_changes_no_index_state(chain):
    chain.pass_(RegisterModel("m5", 5))
    removal = chain.submit(RemoveModel("m5"))  # its voting ends first
    pid = chain.submit(IndexConfig(assign=(("m5", "standard"),)))  # m5 is registered: it is admitted
    run_block(chain.app, [chain.w.tx(v, MsgVote(removal, "yes")) for v in ("a", "b")])
    run_block(chain.app, [chain.w.tx(v, MsgVote(pid, "yes")) for v in ("a", "b")])
    snap = {k: v for k, v in store_snapshot(chain.app.store).items() if k[0] in ("icfg", "iassign", "ichg")}
    run_until(chain.app, chain.q(f"proposal/{pid}")["voting_end_height"])
    failed = chain.q(f"proposal/{pid}")
    assert failed["status"] == "failed" and "IndexConfig.assign.m5: model 'm5' is not registered" in failed["result"]
    after = {k: v for k, v in store_snapshot(chain.app.store).items() if k[0] in ("icfg", "iassign", "ichg")}
    assert after == snap


BAD_QUERIES = [
    ("index_history", {"from_epoch": 5, "to_epoch": 3}, "from_epoch"),
    ("index_history", {"from_epoch": -1}, "from_epoch"),
    ("index_history", {"pagination.limit": 0}, "pagination.limit"),
    ("index_history", {"pagination.limit": 1001}, "pagination.limit"),
    ("index_history", {"pagination.key": "!!"}, "pagination.key"),
    ("index_reconstitutions", {"pagination.limit": -3}, "pagination.limit"),
    ("index_reconstitutions", {"pagination.reverse": "yes"}, "pagination.reverse"),
]


@pytest.mark.parametrize(("path", "params", "named"), BAD_QUERIES)
def test_bad_index_query_arguments_are_bad_query_naming_the_argument(chain, path, params, named):
    with pytest.raises(ChainError) as info:
        chain.q(path, **params)
    assert info.value.code == "bad_query" and named in str(info.value)


# --- properties ---------------------------------------------------------------------------------


@given(
    st.lists(st.integers(1, 10**6), min_size=1, max_size=12),
    st.sampled_from(["1", "1.5", "2", "3", "10"]),
    st.randoms(use_true_random=False),
)
def test_the_capped_mean_lies_in_the_band_and_ignores_the_members_order(units, cap, rnd):
    k = Fraction(cap)
    summary = index.compute_capped_mean(units, k)
    median, mean = Fraction(summary["median"]), Fraction(summary["capped_mean"])
    assert median / k <= mean <= median * k
    shuffled = list(units)
    rnd.shuffle(shuffled)
    assert index.compute_capped_mean(shuffled, k) == summary


@given(
    st.lists(st.integers(1, 10**6), min_size=1, max_size=10),
    st.sampled_from(["1", "2", "3"]),
    st.integers(1, 10**12),
    st.integers(1, 10**12),
)
def test_a_member_far_above_its_band_counts_at_k_times_the_median_whatever_its_price(others, cap, x, y):
    k = Fraction(cap)
    median = index.compute_lower_median([*others, 10**13])  # the top member does not set the lower median
    floor = max(max(others), int(median * k) + 1)
    high_x, high_y = floor + x, floor + y
    a = index.compute_capped_mean([*others, high_x], k)["capped_mean"]
    b = index.compute_capped_mean([*others, high_y], k)["capped_mean"]
    assert a == b == str((sum(index.compute_clipped(u, median, k) for u in others) + median * k) / (len(others) + 1))


def bare_state(price: int = 100) -> State:
    """A state with only what the index reads: the epoch, the height and the registry's version."""
    state = State(MemoryStore(), 1)
    state.set("epoch", "current", {"index": 0, "price": price})
    state.set("meta", "height", 1)
    return state


def register_bare(state: State, model: str, units: int) -> None:
    """Register and activate a model the way governance and the boundary do."""
    version = rules.process_gov_counter(state, "registry_version", 1)
    state.set("model", model, {"id": model, "units_of_compute_per_token": units})
    state.set("amodel", model, {"id": model, "units_of_compute_per_token": units})
    state.set("mlog", rules.compute_index_key(version), {"version": version, "model": model})


def boundary(state: State) -> None:
    """Enter the next epoch and run the index's epoch rule."""
    epoch = rules.get_current_epoch(state)
    state.set("epoch", "current", {**epoch, "index": epoch["index"] + 1})
    index.process_index(state)


MODELS = st.lists(st.tuples(st.integers(1, 10**6), st.sampled_from(["a", "b", "c"])), min_size=1, max_size=12).map(
    lambda rows: [(f"m{n}", units, tier) for n, (units, tier) in enumerate(rows)]
)


@settings(max_examples=40, deadline=None)
@given(MODELS, st.randoms(use_true_random=False), st.integers(1, 4))
def test_the_index_does_not_depend_on_the_order_models_were_added(models, rnd, batches):
    tiers = (("a", "0.5"), ("b", "0.25"), ("c", "0.25"))

    def final(order: list[tuple[str, int, str]], cuts: int) -> Any:
        state = bare_state()
        for model, units, _ in order:
            register_bare(state, model, units)
        index.process_index_config(state, 1, IndexConfig(tiers=tiers).to_json())
        step = max(1, -(-len(order) // cuts))
        for start in range(0, len(order), step):
            chunk = tuple((m, t) for m, _, t in order[start : start + step])
            assert index.process_index_config(state, 2, IndexConfig(assign=chunk).to_json()) is None
            boundary(state)
        record = index.get_latest_index_record(state)
        return record["cost"], {n: dict(t) for n, t in record["tiers"].items()}

    shuffled = list(models)
    rnd.shuffle(shuffled)
    assert final(models, 1) == final(shuffled, batches)


def test_the_index_record_of_a_bare_state_answers_the_declared_queries():
    state = bare_state()
    register_bare(state, "m1", 10)
    index.process_index_config(state, 1, IndexConfig(tiers=(("a", "1"),), assign=(("m1", "a"),)).to_json())
    boundary(state)
    ctx = QueryContext(state, 1, "")
    assert run_query(ctx, "index")["value"] == "100"
    assert run_query(ctx, "index_tiers")["tiers"][0]["members"][0]["cost"] == 10 * 100 * 1500
