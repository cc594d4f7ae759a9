"""The inproc engine (SPEC §9): signed transactions in blocks through the real state machine.

Each scenario here is small (a few epochs of a few blocks) so one run takes about a second; the
expected series are worked out by hand from SPEC §3 (lower weighted median; a validator that has
never voted carries the current price; stake changes apply at the next boundary).
"""

from __future__ import annotations

import csv
import struct
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from chain.app import Application
from chain.tx import MsgBond, MsgVote
from devnet.demand import get_client_key
from devnet.scenario import ValidatorSpec
from devnet.simulate import EpochJob, GovTx, compute_shifted_job
from node.store import SqliteStore

EPOCHS_HEADER = "epoch,price,total_power,voters,non_voters,min_vote,max_vote,fees_collected,chain_epoch"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# a: honest; b: fixed; c: silent; d: fixed in uicoin, joins at 2 and leaves at 6.
MIXED = """
    description = "outputs check"
    seed = 3
    epochs = 8
    epoch_length = 3
    default_unit_of_compute_price = 1000

    [[validators]]
    name = "a"
    stake = 40
    strategy = "honest"
    true_cost = 1200
    noise_bps = 500

    [[validators]]
    name = "b"
    stake = 30
    strategy = "fixed"
    price = 900

    [[validators]]
    name = "c"
    stake = 20
    strategy = "silent"

    [[validators]]
    name = "d"
    stake = 10
    strategy = "fixed"
    price = 2
    denom = "uicoin"
    join_epoch = 2
    leave_epoch = 6
"""


def validator(name: str, stake: int, strategy: str, **fields: int | str) -> str:
    """A [[validators]] table; string values are quoted."""
    lines = ["[[validators]]", f'name = "{name}"', f"stake = {stake}", f'strategy = "{strategy}"']
    lines += [f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


def fixed(name: str, stake: int, price: int, denom: str = "ngonka", **extra: int) -> str:
    """A [[validators]] table for a fixed-price validator."""
    return validator(name, stake, "fixed", price=price, denom=denom, **extra)


def silent(name: str, stake: int, **extra: int) -> str:
    return validator(name, stake, "silent", **extra)


def honest(name: str, stake: int, true_cost: int, noise_bps: int, **extra: int) -> str:
    return validator(name, stake, "honest", true_cost=true_cost, noise_bps=noise_bps, **extra)


def extreme(name: str, stake: int, **extra: int) -> str:
    return validator(name, stake, "extreme", **extra)


def header(epochs: int, epoch_length: int = 1, default: int = 1000, seed: int = 1) -> str:
    return (
        f"seed = {seed}\nepochs = {epochs}\nepoch_length = {epoch_length}\n"
        f"default_unit_of_compute_price = {default}\n\n"
    )


@pytest.fixture(scope="module")
def mixed(simulate: Callable) -> object:
    return simulate(MIXED, "mixed")


# ---------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------


def test_run_writes_epochs_csv_summary_json_price_png_and_the_sqlite_state(mixed) -> None:
    for name in ("epochs.csv", "summary.json", "price.png", "state.db"):
        path = mixed.out / name
        assert path.is_file() and path.stat().st_size > 0, name


def test_a_run_without_proposals_writes_header_only_model_and_proposal_csvs_and_no_models_plot(mixed) -> None:
    assert (
        mixed.out / "models.csv"
    ).read_text() == "epoch,model,units_of_compute_per_token,price_per_token,chain_epoch\n"
    assert (mixed.out / "proposals.csv").read_text().startswith("id,model,kind,submitted_epoch,status,")
    assert not (mixed.out / "models.png").exists()


def test_epochs_csv_has_the_exact_header_and_one_row_per_epoch_from_0_to_epochs_in_order(mixed) -> None:
    lines = (mixed.out / "epochs.csv").read_text().splitlines()
    assert lines[0] == EPOCHS_HEADER
    assert len(lines) == 1 + 8 + 1
    assert mixed.column("epoch") == list(range(0, 9))
    assert all(line.count(",") == 8 for line in lines)


def test_epochs_csv_row_0_is_genesis_default_price_with_empty_min_and_max_vote(mixed) -> None:
    first = (mixed.out / "epochs.csv").read_text().splitlines()[1]
    # genesis validators a, b, c (d joins later): power 90, nobody has voted yet
    assert first.startswith("0,1000,90,0,3,,,") and first.endswith(",0")


def test_epochs_csv_has_the_fees_each_epochs_txs_paid_and_none_for_the_last_unended_epoch(mixed) -> None:
    fees = mixed.column("fees_collected")
    assert all(fee is not None and fee > 0 for fee in fees[:-1]) and fees[-1] == 0


def test_epochs_csv_tracks_joiner_leaver_silent_and_the_uicoin_vote(mixed) -> None:
    # d bonds in epoch 2 (power from 3) and unbonds in epoch 6 (gone from 7); c never votes.
    assert mixed.column("total_power") == [90, 90, 90, 100, 100, 100, 100, 90, 90]
    assert mixed.column("voters") == [0, 2, 2, 3, 3, 3, 3, 2, 2]
    assert mixed.column("non_voters") == [3, 1, 1, 1, 1, 1, 1, 1, 1]
    # d votes 2 uicoin = 2,000 ngonka, the highest vote while it is a validator
    assert mixed.column("max_vote")[3:7] == [2000] * 4
    assert all(v < 2000 for v in mixed.column("max_vote")[1:3] + mixed.column("max_vote")[7:])


def test_summary_json_matches_the_returned_summary_and_the_final_epoch(mixed) -> None:
    on_disk = mixed.summary_file()
    returned = {k: v for k, v in mixed.summary.items() if k not in ("elapsed_seconds", "cpu_seconds")}  # timings
    assert on_disk == returned
    assert on_disk["engine"] == "inproc"
    assert (on_disk["epochs"], on_disk["epoch_length"], on_disk["seed"], on_disk["validators"]) == (8, 3, 3, 4)
    assert (on_disk["final_height"], on_disk["final_epoch"]) == (24, 8)
    assert on_disk["final_price"] == mixed.prices[-1]
    # a and b vote in each of the 8 epochs; d sends bond+vote (2), votes (3, 4, 5), unbond (6)
    assert on_disk["txs_committed"] == 8 + 8 + 5
    assert on_disk["txs_rejected"] == 0
    assert on_disk["rejections"] == {}


def test_summary_final_app_hash_equals_a_recomputation_from_state_db(mixed) -> None:
    store = SqliteStore(mixed.out / "state.db")
    try:
        app = Application(store)
        assert app.height == 24
        assert app.app_hash == mixed.summary["final_app_hash"]
        assert app.recompute_app_hash() == mixed.summary["final_app_hash"]
        history = app.query_all("history")
        assert [r["price"] for r in history] == mixed.prices
    finally:
        store.close()


def test_price_png_is_a_real_png_image(mixed) -> None:
    data = (mixed.out / "price.png").read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 100
    assert data.endswith(b"IEND\xaeB`\x82")


def test_rerun_into_the_same_directory_replaces_the_previous_state(tmp_path: Path) -> None:
    from devnet.scenario import parse_scenario
    from devnet.simulate import run_inproc

    text = header(3) + fixed("a", 10, 300)
    scenario = parse_scenario(text, "rerun.toml")
    first = run_inproc(scenario, tmp_path, progress=False)
    second = run_inproc(scenario, tmp_path, progress=False)
    assert first["final_app_hash"] == second["final_app_hash"]
    assert second["final_height"] == 3 and second["txs_committed"] == 3


def test_a_run_that_fails_midway_leaves_what_it_committed_in_state_db_and_no_earlier_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import devnet.simulate
    from devnet.errors import DevnetError
    from devnet.scenario import parse_scenario

    (tmp_path / "state.db").write_text("an earlier run's file")
    (tmp_path / "votes.csv").write_text("an earlier run's votes")
    calls = []

    def failing_ballot(app: Application, names: dict[str, str]) -> list[dict[str, object]]:
        calls.append(app.height)
        if len(calls) == 2:
            raise DevnetError("stop")
        return real_ballot(app, names)

    real_ballot = devnet.simulate.read_ballot
    monkeypatch.setattr(devnet.simulate, "read_ballot", failing_ballot)
    with pytest.raises(DevnetError, match="stop"):
        devnet.simulate.run_inproc(parse_scenario(header(5, 2) + fixed("a", 10, 300), "fail.toml"), tmp_path)
    with closing(SqliteStore(tmp_path / "state.db")) as store:
        app = Application(store)
        assert app.height == calls[-1] == 4  # two epochs of two blocks
        assert app.recompute_app_hash() == app.app_hash
    # the votes rows written as it ran are dropped: like the run's other tables, the earlier run's file stays
    assert (tmp_path / "votes.csv").read_text() == "an earlier run's votes"
    assert not (tmp_path / "votes.csv.part").exists()


def test_a_run_hands_out_each_epochs_vote_rows_when_the_epoch_ends_and_keeps_no_ballot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long run's memory must not grow with epochs × validators: each epoch's rows leave the run as
    that epoch ends (votes.csv is written as it goes), and what the run returns holds no ballot."""
    import dataclasses

    import devnet.simulate
    from chain.store import MemoryStore
    from devnet.scenario import parse_scenario

    handed: list[tuple[int, list[int]]] = []  # (the chain's height at the hand-out, the rows' epochs)
    scenario = parse_scenario(MIXED, "mixed.toml")
    app_heights: list[int] = []
    real_ballot = devnet.simulate.read_ballot
    monkeypatch.setattr(
        devnet.simulate, "read_ballot", lambda app, names: app_heights.append(app.height) or real_ballot(app, names)
    )
    result = devnet.simulate.simulate(
        scenario,
        MemoryStore(),
        devnet.simulate.InlineExecutor(),
        progress=False,
        votes=lambda rows: handed.append((app_heights[-1], sorted({row["epoch"] for row in rows}))),
    )
    length = scenario.epoch_length
    assert handed == [((epoch + 1) * length, [epoch]) for epoch in range(scenario.epochs)]
    assert {f.name for f in dataclasses.fields(result)} == {
        "summary",
        "history",
        "models",
        "proposals",
        "usage",
        "rejections",
        "prices",
    }  # per epoch at most, never per validator and epoch


def test_the_state_db_written_at_the_end_holds_the_rows_of_a_run_committing_every_block_to_sqlite(
    tmp_path: Path,
) -> None:
    import sqlite3

    from devnet.scenario import parse_scenario
    from devnet.simulate import InlineExecutor, run_inproc, simulate

    scenario = parse_scenario(MIXED, "mixed.toml")
    run_inproc(scenario, tmp_path / "memory", progress=False)
    (tmp_path / "sqlite").mkdir()
    with closing(SqliteStore(tmp_path / "sqlite" / "state.db")) as store:
        simulate(scenario, store, InlineExecutor(), progress=False)

    def rows(directory: str) -> list[tuple[object, ...]]:
        with closing(sqlite3.connect(tmp_path / directory / "state.db")) as db:
            return [*db.execute("SELECT * FROM state ORDER BY space, key"), *db.execute("SELECT * FROM meta")]

    assert rows("memory") == rows("sqlite") and len(rows("memory")) > 20


def test_the_ballot_read_from_the_state_equals_the_validators_query(tmp_path: Path) -> None:
    from chain.store import MemoryStore
    from devnet.scenario import parse_scenario
    from devnet.simulate import InlineExecutor, get_key, read_ballot, simulate

    scenario = parse_scenario(MIXED, "mixed.toml")
    store = MemoryStore()
    rows: list[dict[str, object]] = []
    simulate(scenario, store, InlineExecutor(), progress=False, votes=rows.extend)
    app = Application(store)
    names = {get_key(v.name).address: v.name for v in scenario.validators}
    expected = [
        {
            "validator": names[v["address"]],
            "power": v["power"],
            "vote": v["last_vote"],
            "vote_epoch": v["last_vote_epoch"],
            "jailed": v["jailed"],
            "slashes": v["slashes"],
        }
        for v in app.query_all("validators")
        if v["address"] in names
    ]
    fields = ("validator", "power", "vote", "vote_epoch", "jailed", "slashes")
    last = [{f: row[f] for f in fields} for row in rows if row["epoch"] == scenario.epochs - 1]  # the votes table's
    assert read_ballot(app, names) == expected == last
    assert {row["validator"]: row["vote"] for row in expected} == {"a": 1229, "b": 900, "c": None}  # c never voted


# ---------------------------------------------------------------------------------------------
# Behaviour of the price
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stakes_prices", "median"),
    [
        pytest.param([(50, 100), (30, 200), (20, 300)], 100, id="50/30/20 at 100/200/300 gives 100"),
        pytest.param([(10, 100), (15, 200), (20, 300)], 200, id="10/15/20 at 100/200/300 gives 200"),
        pytest.param([(50, 100), (50, 200)], 100, id="50/50 at 100/200 gives the lower 100"),
        pytest.param([(20, 100), (30, 200), (50, 300)], 200, id="20/30/50 at 100/200/300 gives 200"),
        pytest.param([(49, 100), (51, 5000)], 5000, id="majority at 5000 wins"),
    ],
)
def test_all_fixed_validators_give_the_lower_weighted_median_from_epoch_1(
    simulate, stakes_prices: list[tuple[int, int]], median: int
) -> None:
    text = header(epochs=3, default=1000) + "".join(
        fixed(f"v{i}", stake, price) for i, (stake, price) in enumerate(stakes_prices)
    )
    run = simulate(text, "median")
    assert run.prices == [1000, median, median, median]
    prices = [p for _, p in stakes_prices]
    assert run.column("min_vote") == [None] + [min(prices)] * 3
    assert run.column("max_vote") == [None] + [max(prices)] * 3
    assert run.column("voters") == [0] + [len(stakes_prices)] * 3
    assert run.column("total_power") == [sum(s for s, _ in stakes_prices)] * 4


def test_silent_validator_is_a_non_voter_whose_power_carries_the_current_price(simulate) -> None:
    # low (60) votes 300, quiet (40) never votes, high (50) joins at epoch 2 voting 5000.
    # Epoch 1: (300, 60) (1000 carried by quiet, 40) -> 300.
    # Epoch 3: (300, 60) (300 carried by quiet, 40) (5000, 50), total 150 -> 300. Had quiet carried
    # the genesis default 1000 instead, the median would be 1000.
    text = header(epochs=5, epoch_length=2) + fixed("low", 60, 300) + silent("quiet", 40)
    text += fixed("high", 50, 5000, join_epoch=2)
    run = simulate(text, "silent")
    assert run.prices == [1000, 300, 300, 300, 300, 300]
    assert run.column("voters") == [0, 1, 1, 2, 2, 2]
    assert run.column("non_voters") == [2, 1, 1, 1, 1, 1]
    assert run.column("total_power") == [100, 100, 100, 150, 150, 150]
    assert run.column("min_vote") == [None, 300, 300, 300, 300, 300]
    assert run.column("max_vote") == [None, 300, 300, 5000, 5000, 5000]


def test_only_silent_validators_keep_the_genesis_default_price_with_no_votes(simulate) -> None:
    run = simulate(header(epochs=3, default=777) + silent("s1", 5) + silent("s2", 7), "allsilent")
    assert run.prices == [777] * 4
    assert run.column("voters") == [0] * 4
    assert run.column("non_voters") == [2] * 4
    assert run.column("min_vote") == [None] * 4 and run.column("max_vote") == [None] * 4
    assert run.summary["txs_committed"] == 0


@pytest.mark.parametrize(("join", "leave"), [(1, 3), (4, 2), (3, 3), (2, 7)])
def test_joiner_counts_from_the_epoch_after_join_and_leaver_is_gone_the_epoch_after_leave(
    simulate, join: int, leave: int
) -> None:
    epochs = 7
    text = header(epochs=epochs, epoch_length=2) + fixed("anchor", 100, 500)
    text += fixed("joiner", 10, 9000, join_epoch=join) + fixed("leaver", 1, 7, leave_epoch=leave)
    run = simulate(text, "churn")
    expect_power = [100 + (10 if e >= join + 1 else 0) + (1 if e <= leave else 0) for e in range(epochs + 1)]
    assert run.column("total_power") == expect_power
    expect_voters = [0] + [1 + (e >= join + 1) + (e <= leave) for e in range(1, epochs + 1)]
    assert run.column("voters") == expect_voters
    # the leaver's vote (7) is the lowest while it is a validator, then no longer counts
    assert run.column("min_vote") == [None] + [7 if e <= leave else 500 for e in range(1, epochs + 1)]
    assert run.column("max_vote") == [None] + [9000 if e >= join + 1 else 500 for e in range(1, epochs + 1)]
    assert run.prices == [1000] + [500] * epochs
    assert run.summary["txs_rejected"] == 0


@pytest.mark.parametrize(
    ("join", "every", "epochs"),
    [(0, 3, 10), (2, 3, 10), (1, 4, 10), (0, 1, 5)],
)
def test_vote_every_n_votes_every_nth_epoch_from_join_and_the_vote_persists_in_between(
    simulate, join: int, every: int, epochs: int
) -> None:
    # A tiny silent genesis validator keeps the chain alive until the voter joins; the voter holds
    # nearly all power, so the price equals its vote in force.
    text = header(epochs=epochs, default=1000) + silent("anchor", 1)
    text += honest("voter", 1000, true_cost=100_000, noise_bps=2000, join_epoch=join, vote_every=every)
    run = simulate(text, "every")
    vote_epochs = set(range(join, epochs, every))
    changed = {e for e in range(1, epochs + 1) if run.prices[e] != run.prices[e - 1]}
    assert changed == {v + 1 for v in vote_epochs}
    # between votes the vote stays in force: the voter counts as a voter in every later epoch
    assert run.column("voters") == [0] + [1 if e >= join + 1 else 0 for e in range(1, epochs + 1)]
    for e in range(join + 1, epochs + 1):
        assert run.column("min_vote")[e] == run.column("max_vote")[e] == run.prices[e]
    sent = len(vote_epochs)  # the joiner's bond rides in its first vote's transaction
    assert run.summary["txs_committed"] == sent


BYZ_HONEST = honest("honest-1", 30, 2000, 1000) + honest("honest-2", 15, 2100, 500) + honest("honest-3", 6, 1900, 700)


@pytest.fixture(scope="module")
def honest_only(simulate: Callable) -> object:
    """The honest validators alone: their votes depend only on (seed, name, epoch), so this run's
    min/max vote per epoch is exactly the honest range of the byzantine runs below."""
    return simulate(header(epochs=12, seed=11) + BYZ_HONEST, "honest_only")


@pytest.mark.parametrize(
    ("byz_high", "byz_low"),
    [pytest.param(30, 19, id="byzantine 49 of 100"), pytest.param(25, 5, id="byzantine 30 of 81")],
)
def test_extreme_minority_cannot_move_the_price_outside_the_honest_range(
    simulate, honest_only, byz_high: int, byz_low: int
) -> None:
    text = header(epochs=12, seed=11) + BYZ_HONEST
    text += extreme("byz-high", byz_high, low=1, high=10**12) + extreme("byz-low", byz_low)
    run = simulate(text, "byz")
    lows, highs = honest_only.column("min_vote"), honest_only.column("max_vote")
    for e in range(1, 13):
        assert lows[e] <= run.prices[e] <= highs[e], f"epoch {e}: {run.prices[e]} not in [{lows[e]}, {highs[e]}]"
    # the extremes really were on the ballot: votes cast in even epochs are high (byz-low's default
    # high is 2^63 - 1), in odd epochs low (1); record e holds the votes cast in epoch e - 1
    for e in range(1, 13):
        if (e - 1) % 2 == 0:
            assert run.column("max_vote")[e] == 2**63 - 1
        else:
            assert run.column("min_vote")[e] == 1
    assert run.column("voters")[1:] == [5] * 12


def test_extreme_majority_does_move_the_price_outside_the_honest_range(simulate, honest_only) -> None:
    # control for the test above: with 51 of 100 power the extremes decide the price
    text = header(epochs=12, seed=11) + BYZ_HONEST.replace("stake = 30", "stake = 28", 1)
    text += extreme("byz-high", 30, low=1, high=10**12) + extreme("byz-low", 21)
    run = simulate(text, "byzmaj")
    assert run.column("total_power")[0] == 100
    lows, highs = honest_only.column("min_vote"), honest_only.column("max_vote")
    outside = [e for e in range(1, 13) if not lows[e] <= run.prices[e] <= highs[e]]
    assert len(outside) == 12
    assert set(run.prices[1:]) <= {1, 10**12}


@pytest.mark.parametrize(
    ("price", "denom", "ngonka"),
    [(7, "micoin", 7_000_000), (2, "uicoin", 2_000), (3, "icoin", 3_000_000_000), (5, "mgonka", 5_000_000)],
)
def test_fixed_vote_in_a_larger_denom_is_converted_to_ngonka(simulate, price: int, denom: str, ngonka: int) -> None:
    text = header(epochs=2, default=100) + fixed("anchor", 10, 50) + fixed("big", 90, price, denom)
    run = simulate(text, "denom")
    assert run.column("max_vote") == [None, ngonka, ngonka]
    assert run.column("min_vote") == [None, 50, 50]
    assert run.prices == [100, ngonka, ngonka]


@pytest.mark.parametrize(("true_cost", "noise_bps"), [(10_000, 500), (1_200, 2_500), (5_000, 0)])
def test_honest_votes_stay_within_true_cost_plus_or_minus_noise_bps(simulate, true_cost: int, noise_bps: int) -> None:
    epochs = 15
    run = simulate(header(epochs=epochs) + honest("h", 100, true_cost, noise_bps), "honest")
    votes = run.column("max_vote")[1:]
    assert votes == run.column("min_vote")[1:] == run.prices[1:]
    low = true_cost * (10_000 - noise_bps) / 10_000
    high = true_cost * (10_000 + noise_bps) / 10_000
    assert all(low - 1 <= v <= high for v in votes), (low, high, votes)
    if noise_bps == 0:
        assert set(votes) == {true_cost}
    else:
        assert len(set(votes)) > epochs // 2  # the noise is really drawn, not a constant offset


def test_several_honest_validators_keep_min_and_max_vote_inside_their_noise_bands(simulate) -> None:
    text = header(epochs=10) + honest("h1", 10, 1000, 300) + honest("h2", 20, 1100, 1000) + honest("h3", 30, 900, 50)
    run = simulate(text, "honests")
    lowest, highest = min(1000 * 0.97, 1100 * 0.9, 900 * 0.995), max(1000 * 1.03, 1100 * 1.1, 900 * 1.005)
    for e in range(1, 11):
        assert lowest - 1 <= run.column("min_vote")[e] <= run.prices[e] <= run.column("max_vote")[e] <= highest


# ---------------------------------------------------------------------------------------------
# Reproducibility
# ---------------------------------------------------------------------------------------------


def test_same_scenario_run_twice_in_process_gives_identical_csv_and_app_hash(simulate, mixed) -> None:
    again = simulate(MIXED, "mixed_again")
    assert again.csv_bytes == mixed.csv_bytes
    assert again.summary["final_app_hash"] == mixed.summary["final_app_hash"]
    ignore = {"scenario"}  # the path of the scenario file differs
    assert {k: v for k, v in again.summary_file().items() if k not in ignore} == {
        k: v for k, v in mixed.summary_file().items() if k not in ignore
    }


HONEST_LED = """
    seed = {seed}
    epochs = 8
    epoch_length = 2

    [[validators]]
    name = "leader"
    stake = 60
    strategy = "honest"
    true_cost = 50000
    noise_bps = 1000

    [[validators]]
    name = "follower"
    stake = 40
    strategy = "fixed"
    price = 100
"""


def test_changing_the_seed_changes_the_honest_prices_and_the_app_hash(simulate) -> None:
    # the honest validator holds 60% of the power, so the price is its vote in every epoch
    first = simulate(HONEST_LED.format(seed=1), "seed1")
    second = simulate(HONEST_LED.format(seed=2), "seed2")
    assert first.prices[0] == second.prices[0] == 100
    assert first.prices[1:] == first.column("max_vote")[1:]
    differing = [e for e in range(1, 9) if first.prices[e] != second.prices[e]]
    assert len(differing) >= 6, (first.prices, second.prices)
    assert first.summary["final_app_hash"] != second.summary["final_app_hash"]
    # only the honest votes depend on the seed: the schedule and the fixed votes are unchanged
    assert first.column("total_power") == second.column("total_power")
    assert first.column("voters") == second.column("voters")
    assert first.column("min_vote") == second.column("min_vote") == [None] + [100] * 8


# ---------------------------------------------------------------------------------------------
# Governance events
# ---------------------------------------------------------------------------------------------


def proposal(at_epoch: int, proposer: str, kind: str, model: str, votes: str, **fields: int) -> str:
    """A [[proposals]] table; `votes` is the inline table's inside."""
    lines = [
        "[[proposals]]",
        f"at_epoch = {at_epoch}",
        f'proposer = "{proposer}"',
        f'kind = "{kind}"',
        f'id = "{model}"',
    ]
    lines += [f"{k} = {v}" for k, v in fields.items()] + [f"votes = {{ {votes} }}"]
    return "\n".join(lines) + "\n"


GOVERNANCE = (
    header(epochs=8, epoch_length=4)
    + "min_deposit = 500\n\n"
    + fixed("a", 50, 1000)
    + fixed("b", 30, 2000)
    + fixed("c", 20, 3000)
    + proposal(1, "c", "register_model", "m-alpha", 'a = "yes", b = "yes"', units_of_compute_per_token=10)
    + proposal(1, "a", "register_model", "m-beta", 'a = "no", b = "no", c = "yes"', units_of_compute_per_token=3)
    + proposal(3, "b", "register_model", "m-alpha", 'a = "yes", b = "abstain"', units_of_compute_per_token=7)
    + proposal(4, "b", "remove_model", "m-alpha", 'b = "yes", a = "no_with_veto"')
    + proposal(5, "c", "remove_model", "m-alpha", "", deposit=100)
    + proposal(5, "a", "remove_model", "m-gamma", 'a = "yes"')
)


@pytest.fixture(scope="module")
def governance(simulate: Callable) -> object:
    return simulate(GOVERNANCE, "governance")


def test_governance_run_writes_proposals_csv_with_each_status_and_final_tally(governance) -> None:
    lines = (governance.out / "proposals.csv").read_text().splitlines()
    assert lines == [
        "id,model,kind,submitted_epoch,status,yes,no,abstain,no_with_veto",
        "1,m-alpha,register_model,1,passed,80,0,0,0",
        "2,m-beta,register_model,1,rejected,20,80,0,0",
        "3,m-alpha,register_model,3,passed,50,0,30,0",
        "4,m-alpha,remove_model,4,rejected,30,0,0,50",
        "5,m-alpha,remove_model,5,dropped,,,,",
        "6,m-gamma,remove_model,5,failed,50,0,0,0",
    ]


def test_governance_run_writes_models_csv_from_the_epoch_after_each_change_at_that_epochs_price(governance) -> None:
    # epoch 0: price 1000; from epoch 1 the lower weighted median of 1000 (50), 2000 (30), 3000 (20) is 1000.
    lines = (governance.out / "models.csv").read_text().splitlines()
    assert lines[0] == "epoch,model,units_of_compute_per_token,price_per_token,chain_epoch"
    rows = [tuple(line.split(",")[:4]) for line in lines[1:]]
    assert all(line.split(",")[0] == line.split(",")[4] for line in lines[1:])  # in-process: chain epoch = epoch
    # proposal 1 votes at height 6 and ends at 5 + 4 = 9, in epoch 2: active from epoch 3 at 10 units;
    # proposal 3 ends at 13 + 4 = 17 (epoch 4): 7 units from epoch 5; the veto of proposal 4 keeps it.
    expected = [(str(e), "m-alpha", "10", "10000") for e in (3, 4)]
    expected += [(str(e), "m-alpha", "7", "7000") for e in range(5, 9)]
    assert rows == expected


def test_governance_run_summary_counts_proposals_and_burns_the_vetoed_and_the_dropped_deposits(governance) -> None:
    summary = governance.summary
    assert summary["proposals"] == {"dropped": 1, "failed": 1, "passed": 2, "rejected": 2}
    assert (summary["registry_version"], summary["final_models"]) == (2, {"m-alpha": 7})
    assert summary["deposits_burned"] == 500 + 100  # proposal 4 was vetoed, proposal 5 dropped (prevote burn)
    assert (governance.out / "models.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["txs_rejected"] == 0


# ---------------------------------------------------------------------------------------------
# Commit–reveal voting
# ---------------------------------------------------------------------------------------------


COMMIT_REVEAL_SCENARIO = (
    header(epochs=8, epoch_length=3, default=1000, seed=5)
    + honest("h1", 40, 1200, 400)
    + honest("h2", 30, 1100, 300)
    + fixed("f", 20, 900)
    + honest("slow", 10, 1500, 100, vote_every=3)
)


def test_the_same_scenario_converges_in_both_vote_modes_with_commit_reveal_one_epoch_later(simulate) -> None:
    opened = simulate(COMMIT_REVEAL_SCENARIO, "open")
    revealed = simulate('vote_mode = "commit_reveal"\n' + COMMIT_REVEAL_SCENARIO, "commit_reveal")
    assert revealed.summary["txs_rejected"] == 0
    # a vote committed in e is revealed in e+1 and sets the price of e+2; in open mode it sets e+1's
    assert revealed.prices[:2] == [1000, 1000]
    assert revealed.prices[2:] == opened.prices[1:-1]
    assert revealed.column("voters")[2:] == opened.column("voters")[1:-1]
    assert revealed.column("min_vote")[2:] == opened.column("min_vote")[1:-1]
    assert len(set(opened.prices[1:])) > 1  # the honest noise moves the price: the shift is not trivial


# ---------------------------------------------------------------------------------------------
# Clients: every planned job settled on chain
# ---------------------------------------------------------------------------------------------

# A copycat and a free rider sign from the chain as they go, the others ahead in the helpers; with
# commit-reveal and a joiner the providers' sequences move every epoch. The two clients ask more than
# acme's escrow pays in the spike.
CLIENTS = """
    seed = 4
    epochs = 7
    epoch_length = 3
    default_unit_of_compute_price = 100
    vote_mode = "commit_reveal"

    [params]
    protocol_fee_bps = 250
    fee_min = 7

    [[validators]]
    name = "a"
    stake = 400
    strategy = "honest"
    true_cost = 1000
    noise_bps = 300

    [[validators]]
    name = "b"
    stake = 300
    strategy = "fixed"
    price = 1100

    [[validators]]
    name = "c"
    stake = 100
    strategy = "copycat"

    [[validators]]
    name = "d"
    stake = 50
    strategy = "free_rider"

    [[validators]]
    name = "e"
    stake = 200
    strategy = "fixed"
    price = 900
    join_epoch = 3

    [[proposals]]
    at_epoch = 0
    proposer = "a"
    kind = "register_model"
    id = "m"
    units_of_compute_per_token = 2
    votes = { a = "yes", b = "yes" }

    [[clients]]
    name = "acme"
    escrow = 30000000

    [[clients.demand]]
    model = "m"
    kind = "spike"
    jobs = 10
    peak_jobs = 80
    peak_epoch = 4
    tokens_in = 700
    tokens_out = 300

    [[clients]]
    name = "beta"
    escrow = 1000000000

    [[clients.demand]]
    model = "m"
    kind = "ramp"
    jobs = 40
    to_jobs = 5
    tokens_in = 50
    tokens_out = 10
    reference_price_per_token = 1800
    sensitivity_bps = 30000
"""


@pytest.fixture(scope="module")
def clients(simulate: Callable) -> object:
    return simulate(CLIENTS, "clients")


def read_usage_csv(out: Path) -> list[dict[str, str]]:
    with (out / "usage.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_job_is_settled_on_chain_and_usage_csv_sums_what_the_escrows_paid(clients) -> None:
    rows = read_usage_csv(clients.out)
    assert rows and {r["epoch"] for r in rows} <= {str(e) for e in range(2, 7)}  # m is active from epoch 2
    with closing(SqliteStore(clients.out / "state.db")) as store:
        app = Application(store)
        settled = app.query_all("settlements")
        escrows = {c: app.query(f"escrow/{get_client_key(c).address}")["amount"]["amount"] for c in ("acme", "beta")}
    assert sum(int(r["jobs"]) for r in rows) == len(settled)
    assert sum(int(r["charged"]) for r in rows) == 30_000_000 + 1_000_000_000 - sum(escrows.values())
    assert escrows["acme"] < 1_000 * 2 * 1_100  # acme asked more than its escrow paid for
    assert all(int(r["charged"]) == int(r["payout"]) + int(r["fee"]) for r in rows)
    assert clients.summary["txs_rejected"] == 0


def test_usage_csv_has_its_header_and_rows_in_epoch_model_provider_order(clients) -> None:
    lines = (clients.out / "usage.csv").read_text().splitlines()
    assert lines[0] == "epoch,model,provider,jobs,tokens_in,tokens_out,charged,payout,fee"
    keys = [(int(r["epoch"]), r["model"], r["provider"]) for r in read_usage_csv(clients.out)]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_the_joiner_serves_jobs_only_from_the_epoch_after_it_bonds(clients) -> None:
    epochs = {int(r["epoch"]) for r in read_usage_csv(clients.out) if r["provider"] == "e"}
    assert epochs and min(epochs) == 4


def test_summary_revenue_is_each_providers_usage_csv_total(clients) -> None:
    rows = read_usage_csv(clients.out)
    revenue = clients.summary_file()["revenue"]
    assert sorted(revenue) == ["a", "b", "c", "d", "e"]
    for name, entry in revenue.items():
        mine = [r for r in rows if r["provider"] == name]
        assert entry == {k: sum(int(r[k]) for r in mine) for k in ("jobs", "charged", "payout", "fee")}
    assert revenue["a"]["payout"] > revenue["b"]["payout"] > revenue["c"]["payout"] > 0  # by stake


def test_revenue_png_is_a_real_png_image(clients) -> None:
    assert (clients.out / "revenue.png").read_bytes()[:8] == PNG_MAGIC


def test_a_run_without_clients_writes_no_usage_csv_no_revenue_png_and_no_revenue(mixed) -> None:
    assert not (mixed.out / "usage.csv").exists() and not (mixed.out / "revenue.png").exists()
    assert "revenue" not in mixed.summary_file()


def test_a_shifted_job_moves_each_senders_sequences_by_its_settlements_and_no_one_elses() -> None:
    a, b = ValidatorSpec("a", 10, "silent"), ValidatorSpec("b", 10, "silent")
    job = EpochJob(
        "c", 1, 5, 2, ((0, a, 7), (1, b, 3)), (GovTx(1, "a", 6, (MsgVote(1, "yes"),)), GovTx(0, "b", 2, (MsgBond(1),)))
    )
    shifted = compute_shifted_job(job, {"a": 4})
    assert [sequence for _, _, sequence in shifted.sends] == [11, 3]
    assert [g.sequence for g in shifted.gov] == [10, 2]
    assert (shifted.epoch, shifted.chain_id) == (5, "c")
    assert compute_shifted_job(job, {}) is job  # no clients: the very same job
