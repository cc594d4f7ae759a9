"""Commit–reveal price voting (issue 17, item 1): with vote_mode "commit_reveal" a validator commits
sha256(salt ‖ price ‖ denom ‖ validator) in epoch e (MsgCommitPrice) and reveals it in e+1
(MsgRevealPrice); a matching reveal is its vote cast in e+1, in the ballot tallied at the end of
e+1 (the price in force from e+2). Bad input is refused naming the rule and changes nothing. A
ParamChange proposal switches the mode from the epoch after it passes."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.errors import InvalidGenesis
from chain.params import Params
from chain.tx import (
    MsgCommitPrice,
    MsgRevealPrice,
    MsgSend,
    MsgSubmitPriceProposal,
    MsgSubmitProposal,
    MsgVote,
    ParamChange,
    compute_price_commit_hash,
    decode_tx,
    make_body,
)
from tests.helpers import (
    ADDR,
    CHAIN_ID,
    KEYS,
    Wallets,
    balance,
    make_app,
    make_genesis,
    run_block,
    run_until,
    sign_body,
    signed,
    store_snapshot,
)

SALT = {n: hashlib.sha256(f"salt-{n}".encode()).hexdigest() for n in "abcdefgh"}


def commit(name: str, price: int, denom: str = "ngonka", salt: str | None = None) -> MsgCommitPrice:
    """The commit of `name`'s vote of `price` `denom` with its test salt."""
    return MsgCommitPrice(compute_price_commit_hash(salt or SALT[name], price, denom, ADDR[name]))


def reveal(name: str, price: int, denom: str = "ngonka", salt: str | None = None) -> MsgRevealPrice:
    """The reveal of `name`'s vote of `price` `denom` with its test salt."""
    return MsgRevealPrice(salt or SALT[name], price, denom)


def cr_app(**params):
    """Validators a, b, c (50, 30, 20), d and e not validators; commit_reveal; epochs of 2 blocks."""
    balances = {n: 10**9 for n in "abcde"}
    genesis = make_genesis({"a": 50, "b": 30, "c": 20}, balances, vote_mode="commit_reveal", epoch_length=2)
    genesis["params"].update(params)
    return make_app(genesis)


# --- the param and the encoding -------------------------------------------------------------


@pytest.mark.parametrize("value", ["closed", "", "COMMIT_REVEAL", 1, None, True])
def test_a_bad_vote_mode_is_refused_at_genesis_naming_the_param(value):
    with pytest.raises(InvalidGenesis, match=r"genesis\.params\.vote_mode must be one of open, commit_reveal"):
        Params.from_json({"vote_mode": value})


def test_the_default_vote_mode_is_open_and_leaves_the_stored_params_and_the_app_hash_unchanged():
    assert Params().vote_mode == "open" and "vote_mode" not in Params().to_state_json()
    implicit = make_app(make_genesis({"a": 50}))
    explicit = make_app(make_genesis({"a": 50}, vote_mode="open"))
    assert implicit.app_hash == explicit.app_hash
    assert make_app(make_genesis({"a": 50}, vote_mode="commit_reveal")).app_hash != implicit.app_hash


@settings(max_examples=50, deadline=None)
@given(
    st.binary(min_size=32, max_size=32),
    st.integers(1, 2**63 - 1),
    st.sampled_from(["ngonka", "icoin", "gonka"]),
    st.sampled_from("abc"),
)
def test_the_commit_hash_is_sha256_of_salt_price_denom_and_validator_as_documented(salt, price, denom, name):
    layout = salt + price.to_bytes(8, "big") + bytes([len(denom)]) + denom.encode() + ADDR[name].encode()
    assert compute_price_commit_hash(salt.hex(), price, denom, ADDR[name]) == hashlib.sha256(layout).hexdigest()


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 10**12), st.integers(1, 10**12), st.sampled_from(["ngonka", "icoin"]))
def test_a_commit_binds_the_price_the_denom_and_the_validator(price, other, denom):
    hashed = compute_price_commit_hash(SALT["a"], price, denom, ADDR["a"])
    assert (hashed == compute_price_commit_hash(SALT["a"], other, denom, ADDR["a"])) is (price == other)
    assert hashed != compute_price_commit_hash(SALT["a"], price, denom, ADDR["b"])
    assert hashed != compute_price_commit_hash(SALT["b"], price, denom, ADDR["a"])
    assert hashed != compute_price_commit_hash(SALT["a"], price, "gonka", ADDR["a"])


# --- bad input: each refused naming its rule, nothing stored -----------------------------------


def raw_message(name: str, sequence: int, message: dict) -> bytes:
    """A transaction carrying a message as raw JSON (so that malformed fields reach the chain)."""
    body = make_body(CHAIN_ID, ADDR[name], sequence, [MsgSend(ADDR["e"], 1)], gas_limit=10**9)
    return sign_body(KEYS[name], {**body, "messages": [message]})


HEX64 = "ab" * 32

# (case, vote_mode, blocks to run first (each a list of (sender, message)), the refused tx as
# (sender, message or raw message dict), the code it is refused with)
BAD_INPUT = [
    ("reveal with no commit", "commit_reveal", [[], [], []], ("a", reveal("a", 100)), "no_price_commit"),
    ("reveal in epoch 0", "commit_reveal", [], ("a", reveal("a", 100)), "no_price_commit"),
    (
        "reveal in the commit's own epoch",
        "commit_reveal",
        [[("a", commit("a", 100))]],
        ("a", reveal("a", 100)),
        "no_price_commit",
    ),
    (
        "reveal of a commit two epochs old (expired)",
        "commit_reveal",
        [[("a", commit("a", 100))], [], [], []],
        ("a", reveal("a", 100)),
        "no_price_commit",
    ),
    (
        "reveal of another validator's commit",
        "commit_reveal",
        [[("a", commit("a", 100))], []],
        ("b", reveal("a", 100)),
        "no_price_commit",
    ),
    (
        "a second reveal of one commit",
        "commit_reveal",
        [[("a", commit("a", 100))], [], [("a", reveal("a", 100))]],
        ("a", reveal("a", 100)),
        "no_price_commit",
    ),
    (
        "reveal with another price",
        "commit_reveal",
        [[("a", commit("a", 100))], []],
        ("a", reveal("a", 101)),
        "reveal_mismatch",
    ),
    (
        "reveal with another denom",
        "commit_reveal",
        [[("a", commit("a", 100))], []],
        ("a", reveal("a", 100, "icoin")),
        "reveal_mismatch",
    ),
    (
        "reveal with another salt",
        "commit_reveal",
        [[("a", commit("a", 100))], []],
        ("a", reveal("a", 100, salt=SALT["b"])),
        "reveal_mismatch",
    ),
    (
        "copying another validator's commit and reveal",
        "commit_reveal",
        [[("a", commit("a", 100)), ("b", commit("a", 100))], [], [("a", reveal("a", 100))]],
        ("b", reveal("a", 100)),
        "reveal_mismatch",
    ),
    (
        "second commit in one epoch",
        "commit_reveal",
        [[("a", commit("a", 100))]],
        ("a", commit("a", 200)),
        "duplicate_price_commit",
    ),
    ("commit from a non-validator", "commit_reveal", [], ("d", commit("d", 100)), "not_validator"),
    (
        "hash of 31 bytes",
        "commit_reveal",
        [],
        ("a", {"@type": "MsgCommitPrice", "hash": "ab" * 31}),
        "invalid_commit_hash",
    ),
    (
        "hash in upper case",
        "commit_reveal",
        [],
        ("a", {"@type": "MsgCommitPrice", "hash": "AB" * 32}),
        "invalid_commit_hash",
    ),
    ("hash not hex", "commit_reveal", [], ("a", {"@type": "MsgCommitPrice", "hash": "zz" * 32}), "invalid_commit_hash"),
    ("hash not a string", "commit_reveal", [], ("a", {"@type": "MsgCommitPrice", "hash": 12}), "invalid_commit_hash"),
    (
        "salt of 33 bytes",
        "commit_reveal",
        [[("a", commit("a", 100))], []],
        ("a", {"@type": "MsgRevealPrice", "salt": "ab" * 33, "price": 100, "denom": "ngonka"}),
        "invalid_salt",
    ),
    (
        "salt not hex",
        "commit_reveal",
        [[("a", commit("a", 100))], []],
        ("a", {"@type": "MsgRevealPrice", "salt": "g" * 64, "price": 100, "denom": "ngonka"}),
        "invalid_salt",
    ),
    ("open vote in commit_reveal mode", "commit_reveal", [], ("a", MsgSubmitPriceProposal.of(100)), "wrong_vote_mode"),
    ("commit in open mode", "open", [], ("a", MsgCommitPrice(HEX64)), "wrong_vote_mode"),
    ("reveal in open mode", "open", [[], []], ("a", reveal("a", 100)), "wrong_vote_mode"),
]


@pytest.mark.parametrize(("mode", "before", "refused", "code"), [pytest.param(*c[1:], id=c[0]) for c in BAD_INPUT])
def test_bad_commit_reveal_input_is_refused_naming_the_rule_and_changes_nothing(mode, before, refused, code):
    app, twin = cr_app(vote_mode=mode), cr_app(vote_mode=mode)
    for chain in (app, twin):
        wallets = Wallets()
        for block in before:
            run_block(chain, [wallets.tx(name, msg) for name, msg in block])
    name, msg = refused
    raw = raw_message(name, wallets.next[name], msg) if isinstance(msg, dict) else signed(name, wallets.next[name], msg)
    result = run_block(app, [raw], expect_ok=False)
    run_block(twin)  # the same block without the refused transaction
    assert [r.code for r in result.tx_results] == [code]
    assert store_snapshot(app.store) == store_snapshot(twin.store)


# --- on the chain --------------------------------------------------------------------------


def test_a_reveal_in_epoch_e_plus_1_is_the_vote_of_its_ballot_and_sets_the_price_from_e_plus_2():
    app = cr_app()
    wallets = Wallets()
    run_block(app, [wallets.tx(n, commit(n, p)) for n, p in (("a", 300), ("b", 300), ("c", 100))])  # epoch 0
    run_block(app)
    assert app.query("epoch/current")["price"] == 100  # epoch 1: commits are not votes
    assert app.query("epoch/1")["voters"] == 0  # the record of epoch 1 holds the ballot of epoch 0
    run_block(app, [wallets.tx(n, reveal(n, p)) for n, p in (("a", 300), ("b", 300), ("c", 100))])  # epoch 1
    vote = app.query("price_vote/" + ADDR["a"])
    assert (vote["price_ngonka"], vote["epoch"]) == (300, 1)
    assert app.query("epoch/current")["price"] == 100  # still epoch 1's price until its end
    run_block(app)
    assert (app.query("epoch/current")["index"], app.query("epoch/current")["price"]) == (2, 300)
    assert app.query("epoch/2")["voters"] == 3


def test_the_commits_query_shows_the_unrevealed_commits_with_their_reveal_and_in_force_epochs():
    app = cr_app()
    wallets = Wallets()
    run_block(app, [wallets.tx("a", commit("a", 300))])  # height 1, epoch 0
    run_block(app)
    run_block(app, [wallets.tx("a", commit("a", 310, salt=SALT["h"]))])  # height 3, epoch 1: 0's not revealed
    answer = app.query("price_commits/" + ADDR["a"])
    assert answer["vote_mode"] == "commit_reveal"
    assert [(c["epoch"], c["height"], c["reveal_epoch"], c["in_force_epoch"]) for c in answer["commits"]] == [
        (0, 1, 1, 2),
        (1, 3, 2, 3),
    ]
    assert answer["commits"][1]["hash"] == commit("a", 310, salt=SALT["h"]).hash
    run_block(app, [wallets.tx("a", reveal("a", 300))])
    assert [c["epoch"] for c in app.query("price_commits/" + ADDR["a"])["commits"]] == [1]


def test_a_validator_that_never_revealed_counts_at_the_current_price():
    app = cr_app()
    wallets = Wallets()
    run_block(app, [wallets.tx("a", commit("a", 500)), wallets.tx("c", commit("c", 500))])
    run_block(app)
    run_block(app, [wallets.tx("c", reveal("c", 500))])  # a never reveals: a and b count at 100
    run_block(app)
    assert app.query("epoch/current")["price"] == 100
    assert app.query("epoch/2")["voters"] == 1


@pytest.mark.parametrize("reveal_first", [True, False], ids=["reveal-then-commit", "commit-then-reveal"])
def test_a_reveal_and_the_next_commit_may_share_a_transaction_in_either_order(reveal_first):
    app = cr_app()
    wallets = Wallets()
    run_block(app, [wallets.tx("a", commit("a", 200))])
    run_block(app)
    new_salt = SALT["h"]
    pair = [reveal("a", 200), commit("a", 250, salt=new_salt)]
    run_block(app, [wallets.tx("a", *(pair if reveal_first else pair[::-1]))])
    run_block(app)
    assert app.query("epoch/2")["voters"] == 1  # a's 50 of 100 power at 200: the lower median stays 100
    run_block(app, [wallets.tx("a", reveal("a", 250, salt=new_salt))])
    assert app.query("price_vote/" + ADDR["a"])["price"] == 250


def test_unrevealed_commits_are_dropped_after_their_reveal_epoch_so_a_validator_holds_at_most_two():
    app = cr_app()
    wallets = Wallets()
    for epoch in range(4):
        run_block(app, [wallets.tx("a", commit("a", 100 + epoch))])  # never revealed
        commits = [key for space, key in store_snapshot(app.store) if space == "pcommit"]
        assert len(commits) == min(epoch + 1, 2)
        run_block(app)
    assert [key for space, key in store_snapshot(app.store) if space == "pcommit"] == [f"{3:012d}/{ADDR['a']}"]


def test_reveals_are_fresh_votes_for_misses_and_a_commit_without_reveal_is_a_miss():
    app = cr_app(miss_window=4)
    wallets = Wallets()
    prices = {"a": 100, "b": 100, "c": 100}
    run_block(app, [wallets.tx(n, commit(n, p)) for n, p in prices.items()])
    run_block(app)
    for _ in range(3):
        # a reveals and commits again every epoch, b commits again without revealing, c stops
        run_block(app, [wallets.tx("a", reveal("a", 100), commit("a", 100)), wallets.tx("b", commit("b", 100))])
        run_block(app)
    rows = {v["address"]: v for v in app.query_all("validators")}
    assert [rows[ADDR[n]]["misses"] for n in "abc"] == [1, 4, 4]  # epoch 0 had no reveal for anyone
    assert rows[ADDR["a"]]["last_vote_epoch"] == 3


def test_rewards_go_to_the_revealed_votes_in_the_band():
    app = cr_app(vote_reward_share="1", reward_band="0.01")
    wallets = Wallets()
    run_block(app, [wallets.tx(n, commit(n, p)) for n, p in (("a", 100), ("b", 100), ("c", 300))])
    run_block(app)
    run_block(app, [wallets.tx(n, reveal(n, p)) for n, p in (("a", 100), ("b", 100), ("c", 300))])
    start = {n: balance(app, n) for n in "abc"}
    run_block(app, [signed("d", 0, MsgSend(ADDR["e"], 1), fee=1_000)])  # the end of epoch 1: band [99, 101]
    assert {n: balance(app, n) - start[n] for n in "abc"} == {"a": 625, "b": 375, "c": 0}


def test_the_offline_gas_estimate_covers_a_reveal_and_a_commit_in_one_transaction():
    app = cr_app(min_gas_price="0.01")
    run_block(app, [signed("a", 0, commit("a", 100), fee=10**6)])
    run_block(app)
    raw = signed("a", 1, reveal("a", 100), commit("a", 120, salt=SALT["h"]), fee=10**6)  # the estimate as the limit
    result = app.simulate(raw)
    assert result.ok and result.gas_used <= decode_tx(raw).gas_limit
    assert app.check_tx(raw).ok


# --- governance: ParamChange ----------------------------------------------------------------


def gov_app(**params):
    """cr_app in open mode with a 1-ngonka min_deposit and 1-block voting periods."""
    return cr_app(**{"vote_mode": "open", "min_deposit": 1, "voting_period": 1, "max_deposit_period": 1, **params})


def propose(wallets: Wallets, proposer: str, changes: dict) -> bytes:
    return wallets.tx(proposer, MsgSubmitProposal(ParamChange(tuple(sorted(changes.items()))), 1))


def test_a_passed_param_change_switches_the_vote_mode_from_the_next_epoch():
    app = gov_app()
    wallets = Wallets()
    run_block(app, [propose(wallets, "a", {"vote_mode": "commit_reveal"})])  # height 1
    run_block(app, [wallets.tx(n, MsgVote(1, "yes")) for n in "abc"])  # height 2: passes, the boundary applies it
    assert app.query("proposal/1")["status"] == "passed"
    assert app.query("params")["vote_mode"] == "commit_reveal"
    refused = run_block(app, [signed("a", wallets.next["a"], MsgSubmitPriceProposal.of(100))], expect_ok=False)
    assert [r.code for r in refused.tx_results] == ["wrong_vote_mode"]
    run_block(app, [wallets.tx("a", commit("a", 100))])


def test_a_param_change_passed_mid_epoch_waits_for_the_boundary():
    app = gov_app(epoch_length=4)
    wallets = Wallets()
    run_block(app, [propose(wallets, "a", {"vote_mode": "commit_reveal", "miss_window": 3})])
    run_block(app, [wallets.tx(n, MsgVote(1, "yes")) for n in "abc"])  # passes at height 2 of 4
    assert app.query("proposal/1")["status"] == "passed"
    assert app.query("params")["vote_mode"] == "open"
    run_block(app, [wallets.tx("a", MsgSubmitPriceProposal.of(120))])  # the open vote still counts this epoch
    run_block(app)
    params = app.query("params")
    assert (params["vote_mode"], params["miss_window"]) == ("commit_reveal", 3)
    assert app.query("epoch/current")["price"] == 100  # a's 120 with half the power: the lower median


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"epoch_length": 5}, "not a param governance may change", id="unchangeable"),
        pytest.param({"no_such_param": 1}, "not a param governance may change", id="unknown"),
        pytest.param({"vote_mode": "secret"}, "vote_mode must be one of open, commit_reveal", id="bad-mode"),
        pytest.param({"miss_window": -1}, "miss_window must be an integer", id="bad-window"),
        pytest.param({"slash_fraction_miss": "2"}, "slash_fraction_miss must be a decimal", id="bad-fraction"),
        pytest.param({"min_valid_per_window": 3}, "must be at most miss_window", id="inconsistent"),
        pytest.param({}, "one or more", id="empty"),
    ],
)
def test_a_bad_param_change_is_refused_at_submission_and_stores_nothing(changes, message):
    app = gov_app()
    content = {"@type": "ParamChange", "changes": changes}
    msg = {"@type": "MsgSubmitProposal", "content": content, "initial_deposit": {"amount": 1, "denom": "ngonka"}}
    twin = gov_app()
    result = run_block(app, [raw_message("a", 0, msg)], expect_ok=False)
    run_block(twin)
    assert [r.code for r in result.tx_results] == ["invalid_param_change"]
    assert message in result.tx_results[0].log
    assert store_snapshot(app.store) == store_snapshot(twin.store)


def test_a_param_change_that_no_longer_fits_when_it_passes_fails_and_changes_nothing():
    app = gov_app(voting_period=2, max_deposit_period=2, epoch_length=6)
    wallets = Wallets()
    run_block(app, [propose(wallets, "a", {"miss_window": 4, "min_valid_per_window": 4})])  # id 1
    run_block(app, [propose(wallets, "b", {"miss_window": 2})])  # id 2: fits today's params
    run_block(app, [wallets.tx(n, MsgVote(1, "yes")) for n in "abc"])
    run_block(app, [wallets.tx(n, MsgVote(2, "yes")) for n in "abc"])  # 1 passes at height 3
    run_until(app, 4)  # 2 passes at height 4, after 1: min_valid 4 > window 2
    assert app.query("proposal/1")["status"] == "passed"
    second = app.query("proposal/2")
    assert second["status"] == "failed" and "must be at most miss_window" in second["result"]
    run_until(app, 6)
    params = app.query("params")
    assert (params["miss_window"], params["min_valid_per_window"]) == (4, 4)
    assert not any(space == "pchg" for space, _ in store_snapshot(app.store))


def test_the_param_change_content_round_trips_through_its_wire_form():
    content = ParamChange((("miss_window", 3), ("vote_mode", "commit_reveal")))
    assert content.to_json() == {"@type": "ParamChange", "changes": {"miss_window": 3, "vote_mode": "commit_reveal"}}
    assert json.loads(json.dumps(content.to_json())) == content.to_json()
    assert ParamChange.parse(content.to_json(), "content") == content


# --- random commit and reveal patterns against a model ------------------------------------------

ACTIONS = st.sampled_from(["none", "commit", "reveal", "reveal+commit", "commit+reveal", "commit twice"])


def model_step(name, action, price, epoch, commits, votes):
    """The codes a model of the rules expects for `name`'s transaction this epoch (None: no tx), updating
    its commits {epoch: price} and votes {name: (price, epoch)}."""
    parts = {"none": [], "commit twice": ["commit", "commit"]}.get(action, action.split("+"))
    if not parts:
        return None, []
    staged = dict(commits)
    for part in parts:
        if part == "commit":
            if epoch in staged:
                return "duplicate_price_commit", parts
            staged[epoch] = price
        elif epoch - 1 not in staged:
            return "no_price_commit", parts
        else:
            votes[name] = (staged.pop(epoch - 1), epoch)
    commits.clear()
    commits.update(staged)
    return "ok", parts


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(ACTIONS, ACTIONS, st.integers(50, 150)), min_size=1, max_size=6))
def test_commits_reveals_and_votes_follow_a_model_of_the_rules(pattern):
    app = cr_app()
    wallets = Wallets()
    commits = {"a": {}, "b": {}}  # name -> {epoch: price}
    votes: dict[str, tuple[int, int]] = {}
    for epoch, (action_a, action_b, price) in enumerate(pattern):
        txs, expected = [], []
        for name, action in (("a", action_a), ("b", action_b)):
            prices = dict(commits[name])
            code, parts = model_step(name, action, price + epoch, epoch, commits[name], votes)
            if code is None:
                continue
            msgs = []
            for part in parts:
                if part == "commit":
                    msgs.append(commit(name, price + epoch, salt=hashlib.sha256(f"{name}{epoch}".encode()).hexdigest()))
                else:
                    old = prices.get(epoch - 1, 1)
                    msgs.append(reveal(name, old, salt=hashlib.sha256(f"{name}{epoch - 1}".encode()).hexdigest()))
            raw = signed(name, wallets.next[name], *msgs)
            if code == "ok":
                wallets.next[name] += 1
            txs.append(raw)
            expected.append(code)
        result = run_block(app, txs, expect_ok=False)
        assert [r.code for r in result.tx_results] == expected
        run_block(app)
        for name in "ab":
            on_chain = {c["epoch"] for c in app.query("price_commits/" + ADDR[name])["commits"]}
            assert on_chain == {e for e in commits[name] if e >= epoch}  # the one before expired at the boundary
            commits[name] = {e: p for e, p in commits[name].items() if e >= epoch}
            vote = votes.get(name)
            if vote is None:
                assert app.query("validator/" + ADDR[name])["last_vote"] is None
            else:
                assert (
                    app.query("price_vote/" + ADDR[name])["price"],
                    app.query("price_vote/" + ADDR[name])["epoch"],
                ) == vote
