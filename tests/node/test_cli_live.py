"""uocd query/tx against a live 4-validator devnet: every query's --output json parses, a vote through
the CLI changes the live tally, a passed model reaches /v1/pricing at units × unit price, and a
transaction the chain rejects is one error line with exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devnet.devnet import stop_devnet, up
from tests.node.netutil import wait_until

ROOT = Path(__file__).resolve().parents[2]


def uocd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uocd", *args], cwd=ROOT, capture_output=True, text=True, timeout=90)


def ok_json(*args: str):
    proc = uocd(*args, "--output", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "devnet"
    # The governance test casts its votes with separate `uocd` processes after the proposal commits
    # (seven of them before the second vote, 2-3 s each on a loaded machine): a voting period of 150
    # blocks (about 45 s) leaves them time; the default 20 blocks (6 s), then 60 (18 s, in CI under
    # load), ran out before the second vote arrived.
    state = up(root, 4, epoch_length=5, block_ms=300, params={"voting_period": 150}, echo=lambda line: None)
    yield state
    stop_devnet(root, grace=5.0)
    assert subprocess.run(["pgrep", "-f", str(root)], capture_output=True).stdout == b""


def home(state, i: int) -> str:
    return state["nodes"][i]["home"]


@pytest.mark.parametrize(
    "args, keys",
    [
        (("pricing",), {"unit_of_compute_price", "denom", "epoch", "models"}),
        (("status",), {"chain_id", "height", "app_hash", "epoch", "catching_up", "peers"}),
        (("epoch",), {"index", "price"}),
        (("epoch", "0"), {"epoch", "price", "total_power"}),
        (("validators",), {"validators", "pagination"}),
        (("validators", "--limit", "2", "--reverse"), {"validators", "pagination"}),
        (("proposals",), {"proposals", "pagination"}),
        (("proposals", "--status", "passed"), {"proposals"}),
        (("models",), {"epoch", "models", "registry_version", "pagination"}),
        (("registered-models",), {"models", "registry_version", "pagination"}),
        (("model-changes",), {"changes", "pagination"}),
        (("params",), {"epoch_length", "min_deposit", "voting_period", "quorum"}),
        (("account",), {"address", "balance", "sequence"}),
        (("history", "--from-epoch", "0", "--to-epoch", "1"), {"epochs"}),
    ],
)
def test_every_query_prints_json_with_output_json(devnet, args, keys):
    doc = ok_json("query", *args, "--home", home(devnet, 0))
    assert keys <= set(doc), (args, sorted(doc))


def test_query_uses_node_over_the_home_and_prints_text_by_default(devnet):
    proc = uocd("query", "pricing", "--node", devnet["nodes"][1]["public"])
    assert proc.returncode == 0 and "ngonka per unit of compute" in proc.stdout


def test_a_cli_governance_vote_changes_the_live_tally_and_the_model_reaches_pricing(devnet):
    submitted = ok_json("tx", "register-model", "model-cli", "10", "--home", home(devnet, 0))
    assert submitted["status"] == "committed" and submitted["code"] == "ok"
    newest = ok_json("query", "proposals", "--reverse", "--limit", "1", "--home", home(devnet, 0))["proposals"]
    proposal_id = newest[0]["id"]
    seen = lambda: uocd("query", "proposal", str(proposal_id), "--home", home(devnet, 1), "-o", "json")  # noqa: E731
    before = json.loads(wait_until(lambda: (p := seen()).returncode == 0 and p.stdout, "node n1 has the proposal"))
    assert before["status"] == "voting_period" and before["tally"]["yes"] == 0
    assert before["total_deposit"] == ok_json("query", "params", "--home", home(devnet, 0))["min_deposit"]

    vote = uocd("tx", "gov", "vote", str(proposal_id), "yes", "--home", home(devnet, 1))
    assert vote.returncode == 0 and "committed at height" in vote.stdout and ": ok" in vote.stdout, vote.stderr
    after = ok_json("query", "proposal", str(proposal_id), "--home", home(devnet, 1))
    voter = devnet["nodes"][1]["validator_address"]
    assert after["tally"]["yes"] == before["tally"]["yes"] + 100

    # a second yes (200 of 400) meets the quorum; the voting period is 150 blocks of 0.3 s
    assert uocd("tx", "gov", "vote", str(proposal_id), "yes", "--home", home(devnet, 0)).returncode == 0
    votes = ok_json("query", "votes", str(proposal_id), "--home", home(devnet, 1))["votes"]
    tallied = ok_json("query", "proposal", str(proposal_id), "--home", home(devnet, 1))["status"] != "voting_period"
    assert {"voter": voter, "option": "yes"} in votes or tallied  # votes are deleted once tallied

    def listed():
        pricing = ok_json("query", "pricing", "--home", home(devnet, 3))
        return pricing if any(m["id"] == "model-cli" for m in pricing["models"]) else None

    pricing = wait_until(listed, "the passed model is active in /v1/pricing", timeout=120)
    model = next(m for m in pricing["models"] if m["id"] == "model-cli")
    assert model["price_per_token"] == 10 * pricing["unit_of_compute_price"]


def test_send_and_price_proposal_commit_and_a_rejected_tx_is_one_line_exit_1(devnet, tmp_path):
    to = devnet["nodes"][3]["validator_address"]
    sent = ok_json("tx", "send", to, "7", "--home", home(devnet, 2))
    assert sent["code"] == "ok" and sent["height"] >= 1
    vote = ok_json("tx", "price-proposal", "1", "uicoin", "--home", home(devnet, 2))
    assert vote["code"] == "ok"
    assert ok_json("query", "tx", vote["tx_hash"], "--home", home(devnet, 2))["height"] == vote["height"]

    rejected = uocd("tx", "gov", "vote", "999", "yes", "--home", home(devnet, 2))
    assert rejected.returncode == 1 and "Traceback" not in rejected.stderr
    assert rejected.stderr.count("\n") == 1 and rejected.stderr.startswith("uocd: error: ")
    assert "999" in rejected.stderr

    missing = uocd("query", "proposal", "999", "--home", home(devnet, 2))
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr


def test_a_key_of_the_home_signs_with_from(devnet, tmp_path):
    keys = str(tmp_path / "keys")
    address = ok_json("keys", "add", "carl", "--home", keys)["address"]
    funded = ok_json("tx", "send", address, "1000000", "--home", home(devnet, 0))
    assert funded["code"] == "ok"
    node = devnet["nodes"][0]["public"]
    send = ("tx", "send", devnet["nodes"][0]["validator_address"], "10", "--from", "carl", "--home", keys)
    needs = uocd(*send, "--node", node)  # a key home has no genesis: the chain id must be named
    assert needs.returncode == 1 and needs.stderr.startswith("uocd: error: --chain-id is needed")
    chain_id = ok_json("query", "status", "--node", node)["chain_id"]
    assert chain_id.startswith("uoc-devnet-")  # a devnet's own
    back = ok_json(*send, "--node", node, "--chain-id", chain_id)
    assert back["code"] == "ok"
    fee = ok_json("query", "tx", back["tx_hash"], "--node", node)["tx"]["body"]["fee"]
    account = ok_json("query", "account", "carl", "--home", keys, "--node", node)
    assert account["sequence"] == 1 and account["balance"] == 1_000_000 - 10 - fee and fee > 0


def test_gas_flags_set_the_gas_limit_and_fee_and_an_underpaid_tx_is_one_line_exit_1(devnet):
    to, h = devnet["nodes"][3]["validator_address"], home(devnet, 1)
    fixed = ok_json("tx", "send", to, "1", "--home", h, "--gas", "200000", "--gas-prices", "0.05")
    body = ok_json("query", "tx", fixed["tx_hash"], "--home", h)["tx"]["body"]
    assert (body["gas_limit"], body["fee"]) == (200_000, 10_000)
    auto = ok_json("tx", "send", to, "1", "--home", h, "--fees", "3uicoin")
    body = ok_json("query", "tx", auto["tx_hash"], "--home", h)["tx"]["body"]
    assert body["fee"] == 3_000 and 5_000 < body["gas_limit"] < 50_000  # simulated × 1.2, not the offline bound
    for args, words in [
        (("--gas", "200000", "--fees", "1ngonka"), "insufficient_fee"),
        (("--gas", "3000"), "out_of_gas"),
        (("--fees", "5", "--gas-prices", "0.1"), "not both"),
        (("--gas", "0"), "--gas must be auto or an integer"),
        (("--gas-prices", "cheap"), "--gas-prices must be"),
    ]:
        refused = uocd("tx", "send", to, "1", "--home", h, *args)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert refused.stderr.count("\n") == 1 and words in refused.stderr, refused.stderr
