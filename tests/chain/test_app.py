"""The ABCI-shaped Application: genesis validation, block sequencing, app-hash determinism, queries."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chain.app import Application
from chain.crypto import bech32_encode
from chain.errors import ChainError, InvalidBlock, InvalidGenesis, StoreError
from chain.store import MemoryStore
from chain.tx import MsgBond, MsgSend, MsgSubmitPriceProposal, MsgUnbond
from node.store import SqliteStore
from tests.helpers import (
    ADDR,
    CHAIN_ID,
    DEFAULT_PARAMS,
    balance,
    make_app,
    make_genesis,
    run_block,
    signed,
    store_snapshot,
)

REPO = Path(__file__).resolve().parents[2]


def good_genesis() -> dict:
    return make_genesis({"a": 50, "b": 30, "c": 20}, epoch_length=3)


def mutated(change) -> dict:
    genesis = copy.deepcopy(good_genesis())
    change(genesis)
    return genesis


def _set(path: list, value):
    def change(genesis):
        target = genesis
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _delete(path: list):
    def change(genesis):
        target = genesis
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


def _append(path: list, value):
    def change(genesis):
        target = genesis
        for key in path:
            target = target[key]
        target.append(value)

    return change


WRONG_PREFIX = bech32_encode("cosmos", bytes(20))

BAD_GENESES = [
    pytest.param(_delete(["chain_id"]), "chain_id", id="missing-chain-id"),
    pytest.param(_set(["chain_id"], ""), "chain_id", id="empty-chain-id"),
    pytest.param(_set(["chain_id"], 7), "chain_id", id="chain-id-not-a-string"),
    pytest.param(_set(["chain_id"], "x" * 65), "chain_id", id="chain-id-too-long"),
    pytest.param(_set(["chain_id"], "a\nb\x00"), "chain_id", id="chain-id-with-control-characters"),
    pytest.param(_set(["chain_id"], "uoc test"), "chain_id", id="chain-id-with-a-space"),
    pytest.param(_set(["chain_id"], "-uoc"), "chain_id", id="chain-id-starting-with-a-dash"),
    pytest.param(_set(["app_state"], {}), "unknown field(s): app_state", id="unknown-top-level-field"),
    pytest.param(_set(["params"], [1]), "params", id="params-not-an-object"),
    pytest.param(_set(["params", "block_time"], 5), "unknown field(s): block_time", id="unknown-param"),
    pytest.param(_set(["params", "epoch_length"], 0), "epoch_length", id="zero-epoch-length"),
    pytest.param(_set(["params", "epoch_length"], -3), "epoch_length", id="negative-epoch-length"),
    pytest.param(_set(["params", "epoch_length"], 2.5), "epoch_length", id="float-epoch-length"),
    pytest.param(_set(["params", "epoch_length"], "10"), "epoch_length", id="string-epoch-length"),
    pytest.param(_set(["params", "epoch_length"], True), "epoch_length", id="bool-epoch-length"),
    pytest.param(
        _set(["params", "default_unit_of_compute_price"], 0), "default_unit_of_compute_price", id="zero-default-price"
    ),
    pytest.param(
        _set(["params", "default_unit_of_compute_price"], -1),
        "default_unit_of_compute_price",
        id="negative-default-price",
    ),
    pytest.param(
        _set(["params", "default_unit_of_compute_price"], 1.5),
        "default_unit_of_compute_price",
        id="float-default-price",
    ),
    pytest.param(
        _set(["params", "default_unit_of_compute_price"], 2**63),
        "default_unit_of_compute_price",
        id="overflowing-default-price",
    ),
    pytest.param(
        _set(["params", "default_unit_of_compute_price"], None),
        "default_unit_of_compute_price",
        id="null-default-price",
    ),
    pytest.param(_set(["accounts"], {"a": 1}), "accounts", id="accounts-not-a-list"),
    pytest.param(_append(["accounts"], "uoc1xyz"), "accounts", id="account-not-an-object"),
    pytest.param(_append(["accounts"], {"address": ADDR["a"], "balance": 5}), "appears twice", id="duplicate-account"),
    pytest.param(
        _append(["validators"], {"address": ADDR["b"], "stake": 5}), "appears twice", id="duplicate-validator"
    ),
    pytest.param(
        _append(["accounts"], {"address": "uoc1notanaddress", "balance": 5}), "address", id="bad-account-address"
    ),
    pytest.param(
        _append(["accounts"], {"address": WRONG_PREFIX, "balance": 5}), "address", id="wrong-prefix-account-address"
    ),
    pytest.param(
        _append(["accounts"], {"address": ADDR["f"].upper(), "balance": 5}), "address", id="upper-case-account-address"
    ),
    pytest.param(_append(["accounts"], {"balance": 5}), "address", id="account-without-address"),
    pytest.param(_append(["validators"], {"address": "uoc1bad", "stake": 5}), "address", id="bad-validator-address"),
    pytest.param(_append(["accounts"], {"address": ADDR["f"], "balance": -1}), "balance", id="negative-balance"),
    pytest.param(_append(["accounts"], {"address": ADDR["f"], "balance": 1.0}), "balance", id="float-balance"),
    pytest.param(_append(["accounts"], {"address": ADDR["f"], "balance": "5"}), "balance", id="string-balance"),
    pytest.param(_append(["accounts"], {"address": ADDR["f"], "balance": 2**63}), "balance", id="overflowing-balance"),
    pytest.param(_append(["validators"], {"address": ADDR["f"], "stake": 0}), "stake", id="zero-stake"),
    pytest.param(_append(["validators"], {"address": ADDR["f"], "stake": -5}), "stake", id="negative-stake"),
    pytest.param(_append(["validators"], {"address": ADDR["f"]}), "stake", id="validator-without-stake"),
    pytest.param(
        _set(["accounts"], [{"address": ADDR["a"], "balance": 2**62}, {"address": ADDR["b"], "balance": 2**62}]),
        "supply",
        id="supply-overflow",
    ),
    pytest.param(
        _append(["accounts"], {"address": ADDR["f"], "balanse": 500}), "balanse", id="unknown-account-field-typo"
    ),
    pytest.param(
        _append(["validators"], {"address": ADDR["f"], "stake": 5, "power": 9}), "power", id="unknown-validator-field"
    ),
]


@pytest.mark.parametrize(("change", "reason"), BAD_GENESES)
def test_invalid_genesis_is_refused_with_invalid_genesis_and_leaves_the_store_empty(change, reason):
    store = MemoryStore()
    app = Application(store)
    with pytest.raises(InvalidGenesis) as info:
        app.init_chain(mutated(change))
    assert info.value.code == "invalid_genesis"
    assert reason in str(info.value)
    assert store.last_commit() is None and list(store.entries()) == []
    assert app.height == -1
    app.init_chain(good_genesis())  # the same app can still start from a valid genesis
    assert app.height == 0


@pytest.mark.parametrize("genesis", [None, [], "genesis", 5])
def test_genesis_that_is_not_an_object_is_refused(genesis):
    with pytest.raises(InvalidGenesis):
        Application(MemoryStore()).init_chain(genesis)


def test_genesis_params_default_when_omitted():
    genesis = good_genesis()
    del genesis["params"]
    app = make_app(genesis)
    assert app.query("params") == DEFAULT_PARAMS
    assert app.query("epoch/current")["price"] == 100


def test_genesis_writes_epoch_0_with_the_genesis_validator_set_and_supply():
    app = make_app(good_genesis())
    assert app.height == 0
    assert app.query("status") == {
        "chain_id": CHAIN_ID,
        "height": 0,
        "app_hash": app.app_hash,
        "epoch": 0,
        "unit_of_compute_price": 100,
    }
    powers = {v["address"]: v["power"] for v in app.query_all("validators")}
    assert powers == {ADDR["a"]: 50, ADDR["b"]: 30, ADDR["c"]: 20}
    epoch = app.query("epoch/current")
    assert (epoch["index"], epoch["total_power"], epoch["validators"], epoch["start_height"]) == (0, 100, 3, 1)
    assert json.loads(app.store.get("meta", "supply")) == 5 * 1000 + 100


def test_init_chain_twice_is_refused_and_changes_nothing():
    store = MemoryStore()
    app = make_app(good_genesis(), store)
    before = (app.app_hash, list(store.entries()))
    with pytest.raises(StoreError):
        app.init_chain(good_genesis())
    with pytest.raises(StoreError):
        Application(store).init_chain(make_genesis({"d": 5}))  # a new app over the same store
    assert (app.app_hash, list(store.entries())) == before


def test_finalize_block_before_init_chain_is_refused():
    with pytest.raises(InvalidBlock):
        Application(MemoryStore()).finalize_block(1, [])


@pytest.mark.parametrize("height", [0, 2, 3, -1, 100])
def test_finalize_block_with_a_height_that_does_not_follow_is_refused(height):
    app = make_app(good_genesis())
    with pytest.raises(InvalidBlock) as info:
        app.finalize_block(height, [])
    assert info.value.code == "invalid_block"
    assert app.height == 0


def test_finalize_block_of_an_already_committed_height_is_refused():
    app = make_app(good_genesis())
    run_block(app)
    with pytest.raises(InvalidBlock):
        app.finalize_block(1, [])


def test_commit_without_a_finalized_block_is_refused():
    app = make_app(good_genesis())
    with pytest.raises(InvalidBlock):
        app.commit()
    run_block(app)
    with pytest.raises(InvalidBlock):
        app.commit()
    assert app.height == 1


def test_finalize_block_persists_nothing_until_commit_and_can_be_rerun():
    app = make_app(good_genesis())
    txs = [signed("a", 0, MsgSend(ADDR["b"], 5))]
    snapshot = list(app.store.entries())
    first = app.finalize_block(1, txs)
    assert list(app.store.entries()) == snapshot
    assert app.height == 0 and app.query("status")["height"] == 0
    second = app.finalize_block(1, txs)  # a new round re-runs the same block
    assert second.app_hash == first.app_hash
    assert app.commit() == first.app_hash
    assert app.app_hash == app.recompute_app_hash() == first.app_hash


def test_process_proposal_reports_each_tx_in_order_and_writes_nothing():
    app = make_app(good_genesis())
    txs = [signed("a", 0, MsgSend(ADDR["b"], 5)), signed("a", 0, MsgSend(ADDR["b"], 5)), b"garbage"]
    snapshot = list(app.store.entries())
    results = app.process_proposal(1, txs)
    assert [r.code for r in results] == ["ok", "wrong_sequence", "malformed"]
    assert list(app.store.entries()) == snapshot and app.height == 0
    assert app.finalize_block(1, txs[:1]).tx_results[0].ok  # the state was not advanced by the check


def test_finalize_block_after_process_proposal_of_the_same_block_gives_the_same_result_as_without():
    txs = [signed("a", 0, MsgSend(ADDR["b"], 5)), signed("b", 0, MsgBond(3)), signed("a", 0, MsgSend(ADDR["c"], 1))]
    plain, proposed = make_app(good_genesis()), make_app(good_genesis())
    proposed.process_proposal(1, txs)
    expected = plain.finalize_block(1, txs)
    assert proposed.finalize_block(1, txs) == expected
    assert proposed.commit() == plain.commit() == proposed.recompute_app_hash()
    assert store_snapshot(proposed.store) == store_snapshot(plain.store)


def test_finalize_block_of_another_block_than_the_last_proposal_runs_it_afresh():
    app = make_app(good_genesis())
    proposed = [signed("a", 0, MsgSend(ADDR["b"], 5))]
    decided = [signed("a", 0, MsgSend(ADDR["c"], 7))]
    app.process_proposal(1, proposed)
    result = app.finalize_block(1, decided)
    app.commit()
    assert result.tx_results[0].ok
    assert (balance(app, "b"), balance(app, "c")) == (1000, 1007)
    assert app.process_proposal(2, proposed)[0].code == "wrong_sequence"  # the other block never applied


def test_process_proposal_of_a_wrong_height_is_refused():
    app = make_app(good_genesis())
    with pytest.raises(InvalidBlock, match="does not follow"):
        app.process_proposal(2, [])


def test_process_proposal_refuses_a_block_over_the_genesis_max_block_txs_and_accepts_one_that_fits():
    """Regression: the limits were node constants (20,000 txs, 16 MiB), not params the chain checks."""
    genesis = good_genesis()
    genesis["params"]["max_block_txs"] = 2
    app = make_app(genesis)
    txs = [signed("a", i, MsgSend(ADDR["b"], 1)) for i in range(3)]
    with pytest.raises(InvalidBlock, match="3 txs") as info:
        app.process_proposal(1, txs)
    assert info.value.code == "block_too_large" and app.height == 0
    assert [r.code for r in app.process_proposal(1, txs[:2])] == ["ok", "ok"]


def test_process_proposal_refuses_a_block_over_the_genesis_max_block_bytes_and_accepts_one_that_fits():
    txs = [signed("a", i, MsgSend(ADDR["b"], 1)) for i in range(2)]
    genesis = good_genesis()
    genesis["params"]["max_block_bytes"] = len(txs[0]) + len(txs[1]) - 1
    app = make_app(genesis)
    with pytest.raises(InvalidBlock, match="bytes exceeds"):
        app.process_proposal(1, txs)
    assert [r.code for r in app.process_proposal(1, txs[:1])] == ["ok"]
    assert app.get_params().max_block_bytes == len(txs[0]) + len(txs[1]) - 1


def _blocks() -> list[list[bytes]]:
    return [
        [signed("a", 0, MsgSubmitPriceProposal.of(300)), signed("d", 0, MsgBond(100))],
        [signed("d", 1, MsgSubmitPriceProposal.of(2, "uicoin")), signed("b", 0, MsgSend(ADDR["e"], 17))],
        [signed("c", 0, MsgUnbond(20)), b"garbage", signed("a", 0, MsgSend(ADDR["b"], 1))],
        [],
        [signed("b", 1, MsgSubmitPriceProposal.of(1, "micoin")), signed("e", 0, MsgSend(ADDR["f"], 1017))],
        [signed("a", 1, MsgBond(500)), signed("f", 0, MsgBond(17))],
        [],
    ]


def test_app_hash_is_identical_on_memory_and_sqlite_stores_at_every_height(tmp_path):
    memory = Application(MemoryStore())
    sqlite = Application(SqliteStore(tmp_path / "state.db"))
    assert memory.init_chain(good_genesis()) == sqlite.init_chain(good_genesis())
    for height, txs in enumerate(_blocks(), start=1):
        a = memory.finalize_block(height, txs)
        b = sqlite.finalize_block(height, txs)
        assert a.app_hash == b.app_hash
        assert [r.code for r in a.tx_results] == [r.code for r in b.tx_results]
        assert memory.commit() == sqlite.commit() == a.app_hash
        assert memory.recompute_app_hash() == sqlite.recompute_app_hash() == a.app_hash
        assert memory.query_all("history") == sqlite.query_all("history")
    assert memory.query("epoch/current")["index"] == 2


def test_app_hash_changes_with_every_block_even_an_empty_one():
    app = make_app(good_genesis())
    hashes = [app.app_hash]
    for _ in range(7):
        hashes.append(run_block(app).app_hash)
    assert len(set(hashes)) == len(hashes)


def test_app_hash_depends_on_the_genesis_contents():
    one = make_app(good_genesis()).app_hash
    same = make_app(good_genesis()).app_hash
    other = make_app(make_genesis({"a": 50, "b": 30, "c": 21}, epoch_length=3)).app_hash
    assert one == same
    assert one != other


_HASH_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    from chain.app import Application
    from chain.store import MemoryStore
    from tests.chain.test_app import _blocks, good_genesis
    app = Application(MemoryStore())
    app.init_chain(good_genesis())
    for txs in _blocks():
        app.finalize_block(app.height + 1, txs)
        app.commit()
    print(app.app_hash)
    """
)


def test_app_hash_is_the_same_in_other_processes_under_any_pythonhashseed():
    app = make_app(good_genesis())
    for txs in _blocks():
        app.finalize_block(app.height + 1, txs)
        app.commit()
    seen = set()
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", _HASH_SCRIPT.format(repo=str(REPO))],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=60,
            check=True,
        )
        seen.add(out.stdout.strip())
    assert seen == {app.app_hash}


# --- queries -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "code"),
    [
        pytest.param("nonsense", "unknown_query", id="unknown-path"),
        pytest.param("", "unknown_query", id="empty-path"),
        pytest.param("accounts/x", "unknown_query", id="near-miss-path"),
        pytest.param("epoch/99", "not_found", id="future-epoch"),
        pytest.param("epoch/abc", "bad_query", id="non-numeric-epoch"),
        pytest.param("epoch/-1", "bad_query", id="negative-epoch"),
        pytest.param("epoch/1.5", "bad_query", id="fractional-epoch"),
        pytest.param("epoch/\u00b2", "bad_query", id="superscript-digit-epoch"),
        pytest.param("epoch/" + "9" * 5000, "bad_query", id="5000-digit-epoch"),
        pytest.param("proposal/" + "9" * 5000, "bad_query", id="5000-digit-proposal"),
        pytest.param("price_vote/" + ADDR["a"], "not_found", id="never-voted"),
    ],
)
def test_query_errors_raise_chain_error_with_a_code(path, code):
    app = make_app(good_genesis())
    with pytest.raises(ChainError) as info:
        app.query(path)
    assert info.value.code == code
    assert str(info.value)


def test_query_reads_committed_state_only():
    app = make_app(good_genesis())
    app.check_tx(signed("a", 0, MsgSend(ADDR["b"], 5)))
    app.finalize_block(1, [signed("a", 0, MsgSend(ADDR["b"], 5))])
    assert app.query("account/" + ADDR["a"])["balance"] == 1000
    assert app.query("status")["height"] == 0
    app.commit()
    assert app.query("account/" + ADDR["a"])["balance"] == 995
    assert app.query("status")["height"] == 1


def test_query_of_an_unknown_account_returns_an_empty_account():
    app = make_app(good_genesis())
    assert app.query("account/" + ADDR["h"]) == {"address": ADDR["h"], "balance": 0, "sequence": 0, "pubkey": None}


def test_query_epoch_current_and_numbered_agree_with_history():
    app = make_app(good_genesis())
    for _ in range(3):
        run_block(app)
    assert app.query("epoch/current") == app.query("epoch")
    assert app.query("epoch/1") == app.query_all("history")[1]
    assert app.query("epoch/0")["epoch"] == 0
