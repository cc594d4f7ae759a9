"""The reference index over HTTP and the command line, against a real `uocd start` process (one
validator, short governance periods): models registered through the admin API, an IndexConfig
proposed with `uocd tx index-config`, then `/v1/index`, its history, tiers, reconstitutions and health,
and `uocd query index`; bad input a 4xx naming the field, with nothing changed."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
import requests

from chain.tx import IndexConfig, MsgSubmitProposal, MsgVote, sign_tx
from tests.helpers import sign_body
from tests.node.netutil import ApiNode, make_cli_home, wait_until
from uocd.main import main as uocd

RETRYABLE = (requests.RequestException,)
TIMEOUT = 10
JSON = {"Content-Type": "application/json"}
PARAMS = {"epoch_length": 3, "voting_period": 2, "max_deposit_period": 2, "min_deposit": 1000}
MODELS = {"m-small": 10, "m-mid": 12, "m-huge": 5000, "m-front": 100}


class Node(ApiNode):
    def get(self, path: str, **params) -> requests.Response:
        return requests.get(self.public + path, params=params, timeout=TIMEOUT)

    def post_tx(self, raw: bytes) -> requests.Response:
        return requests.post(self.public + "/v1/txs", data=raw, params={"wait": "commit"}, headers=JSON, timeout=30)

    def sequence(self) -> int:
        return self.get(f"/v1/accounts/{self.key.address}").json()["sequence"]

    def vote_yes(self, proposal_id: int) -> None:
        raw = sign_tx(self.key, self.chain_id, self.sequence(), [MsgVote(proposal_id, "yes")])
        assert self.post_tx(raw).json()["code"] == "ok"

    def passed(self, proposal_id: int) -> bool:
        return self.get(f"/v1/governance/proposals/{proposal_id}").json()["status"] == "passed"


def make_home(root: Path) -> Path:
    return make_cli_home(root, "index", "uoc-indextest", PARAMS)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    process = Node(make_home(tmp_path_factory.mktemp("index")))
    try:
        wait_until(lambda: process.get("/v1/status").json()["height"] >= 2, "the node commits", ignore=RETRYABLE)
        for model, units in MODELS.items():
            answer = requests.post(
                process.admin + "/v1/admin/models",
                data=json.dumps({"id": model, "units_of_compute_per_token": units}),
                headers={**JSON, **process.auth},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            process.vote_yes(answer.json()["proposal_id"])
        active = lambda: len(process.get("/v1/pricing").json()["models"]) == len(MODELS)  # noqa: E731
        wait_until(active, "the models are active", ignore=RETRYABLE)
        yield process
    finally:
        assert process.stop() == 0


def test_before_any_config_the_index_is_not_found_and_its_health_stale(node):
    answer = node.get("/v1/index")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    health = node.get("/v1/index/health").json()
    assert health["stale"] is True and health["latest_epoch"] is None


def test_an_index_config_proposed_from_the_cli_makes_the_index_served_exactly(node, capsys):
    args = ["tx", "index-config", "--tiers", "frontier=0.25,standard=0.75", "--workload", "1000,500"]
    args += ["--assign", "m-small=standard,m-mid=standard,m-huge=standard,m-front=frontier"]
    assert uocd([*args, "--home", str(node.home), "--node", node.public]) == 0
    proposal = node.get("/v1/governance/proposals", **{"pagination.reverse": "true"}).json()["proposals"][0]
    assert proposal["content"]["@type"] == "IndexConfig"
    node.vote_yes(proposal["id"])
    wait_until(lambda: node.passed(proposal["id"]), "the config passes", ignore=RETRYABLE)
    wait_until(lambda: node.get("/v1/index").status_code == 200, "the index is computed", ignore=RETRYABLE)
    wait_until(lambda: not node.get("/v1/index/health").json()["stale"], "the index is fresh", ignore=RETRYABLE)
    index = node.get("/v1/index").json()
    assert index["workload"] == {"in": 1000, "out": 500} and index["cap"] == "2" and index["denom"] == "ngonka"
    # standard: 10, 12, 5000 units, lower median 12: m-huge counts at 24; frontier: 100 units
    price = index["unit_price"]
    expected = (Fraction(1, 4) * 100 + Fraction(3, 4) * Fraction(10 + 12 + 24, 3)) * 1500 * price
    assert Fraction(index["cost_exact"]) == expected
    baseline_cost = Fraction(index["baseline"]["cost_exact"])
    assert Fraction(index["value_exact"]) == 100 * expected / baseline_cost
    for text in (index["value"], index["cost"], *(t["weight"] for t in index["tiers"])):
        assert isinstance(text, str) and "e" not in text.lower()  # decimal strings, never floats
    tiers = node.get("/v1/index/tiers").json()["tiers"]
    standard = next(t for t in tiers if t["tier"] == "standard")
    assert {m["model"]: m["clipped"] for m in standard["members"]} == {"m-huge": "high", "m-mid": None, "m-small": None}
    recon = node.get("/v1/index/reconstitutions").json()["reconstitutions"]
    assert sorted(c["model"] for c in recon[0]["changes"]) == sorted(MODELS)
    assert recon[0]["value_before"] is None and recon[0]["value_after"] == "100"
    history = node.get("/v1/index/history", **{"pagination.limit": 1}).json()
    assert len(history["epochs"]) == 1 and history["epochs"][0]["epoch"] == recon[0]["epoch"]
    health = node.get("/v1/index/health").json()
    assert health["latest_epoch"] == health["current_epoch"] and health["reasons"] == []
    capsys.readouterr()
    assert uocd(["query", "index", "--home", str(node.home), "--node", node.public, "-o", "json"]) == 0
    served = json.loads(capsys.readouterr().out)
    assert served["baseline"] == index["baseline"] and served["workload"] == index["workload"]
    assert uocd(["query", "index-health", "--home", str(node.home), "--node", node.public, "-o", "json"]) == 0
    assert "stale" in json.loads(capsys.readouterr().out)


BAD_QUERIES = [
    ("/v1/index/history", {"from_epoch": "5", "to_epoch": "3"}, "from_epoch"),
    ("/v1/index/history", {"from_epoch": "-1"}, "from_epoch"),
    ("/v1/index/history", {"to_epoch": "x"}, "to_epoch"),
    ("/v1/index/history", {"pagination.limit": "0"}, "pagination.limit"),
    ("/v1/index/reconstitutions", {"pagination.limit": "1001"}, "pagination.limit"),
    ("/v1/index/reconstitutions", {"pagination.key": "!!"}, "pagination.key"),
]


@pytest.mark.parametrize(("path", "params", "named"), BAD_QUERIES)
def test_bad_index_query_arguments_are_a_400_naming_the_argument(node, path, params, named):
    answer = node.get(path, **params)
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["error"]["message"]


BAD_CONFIGS = [
    ("weights that do not sum to one", {"tiers": {"a": "0.5", "b": "0.4"}}, "IndexConfig.tiers"),
    ("a negative workload", {"workload": {"in": -5, "out": 1}}, "workload.in"),
    ("a zero workload", {"workload": {"in": 0, "out": 0}}, "IndexConfig.workload"),
    ("a tier that does not exist", {"assign": {"m-mid": "premium"}}, "IndexConfig.assign.m-mid"),
    ("an unknown model", {"assign": {"m-none": "standard"}}, "IndexConfig.assign.m-none"),
]


@pytest.mark.parametrize(("case", "fields", "named"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_a_bad_index_config_is_a_4xx_naming_the_field_and_changes_nothing(node, case, fields, named):
    sequence = node.sequence()
    content = {"@type": "IndexConfig", **fields}
    message = {**MsgSubmitProposal(IndexConfig.example(), 1000).to_json(), "content": content}
    body = {
        "chain_id": node.chain_id,
        "sender": node.key.address,
        "sequence": sequence,
        "fee": 10**6,
        "gas_limit": 10**6,
        "messages": [message],
    }
    answer = node.post_tx(sign_body(node.key, body))
    assert 400 <= answer.status_code < 500, answer.text
    assert named in json.dumps(answer.json())
    assert node.sequence() == sequence  # nothing was taken: not even the fee
