"""Usage over HTTP and the command line, against a real `uocd start` process (one validator, short
governance periods so a model is active within seconds): a receipt settled through the admin API and
`uocd tx settle`, the settlement and its PAC charge report, the acp-1 price model (schema-valid, with
ETag and Cache-Control), cost records and their totals, the pricing's per-million prices; every kind of
bad input a 4xx naming the rule, with nothing moved."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from pathlib import Path

import jsonschema_rs
import pytest
import requests

from chain.crypto import PrivateKey
from chain.tx import MsgFundEscrow, MsgRefund, MsgVote, Receipt, Tokens, sign_receipt, sign_tx
from node.secret_files import render_key, write_secret
from tests.node.netutil import NodeProcess, make_cli_home, wait_until
from uocd.main import main as uocd

RETRYABLE = (requests.RequestException,)
TIMEOUT = 10
JSON = {"Content-Type": "application/json"}
REQUESTER = PrivateKey.from_name("usage-requester", salt="uoc-tests")
OTHER = PrivateKey.from_name("usage-other", salt="uoc-tests")
PARAMS = {
    "epoch_length": 3,
    "voting_period": 2,
    "max_deposit_period": 2,
    "min_deposit": 1000,
    "protocol_fee_bps": 250,
    "fee_min": 1,
    "dispute_window": 10_000,
}
UNITS = 3
SCHEMAS = json.loads((Path(__file__).parent / "acp_schemas.json").read_text())


class Node(NodeProcess):
    def __init__(self, home: Path) -> None:
        super().__init__(home)
        self.public = f"http://{self.public}"
        self.admin = f"http://{self.admin}"

    def get(self, path: str, headers: dict | None = None, **params) -> requests.Response:
        return requests.get(self.public + path, params=params, headers=headers, timeout=TIMEOUT)

    def post_tx(self, raw: bytes) -> requests.Response:
        return requests.post(self.public + "/v1/txs", data=raw, params={"wait": "commit"}, headers=JSON, timeout=30)

    def get_admin(self, path: str) -> requests.Response:
        return requests.get(self.admin + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=TIMEOUT)

    def post_admin(self, path: str, doc: dict) -> requests.Response:
        headers = {**JSON, "Authorization": f"Bearer {self.token}"}
        return requests.post(self.admin + path, data=json.dumps(doc), headers=headers, timeout=30)

    def sequence(self, key: PrivateKey) -> int:
        return self.get(f"/v1/accounts/{key.address}").json()["sequence"]

    def money(self) -> dict:
        """What a usage tx can move: the requester's and another account's balance and escrow, and the
        validator's balance with the fee pool and the held usage fees (held fees join the pool when a
        dispute window ends, and the pool is paid to the validator at epoch ends: their sum stays), all
        read at one height (`?height=`: a block committed between two reads answers 404, and it reads
        again; the reads of two heights disagreed when an epoch end paid the pool in between)."""
        while True:
            height = self.get("/v1/status").json()["height"]
            answers = [
                self.get(f"/v1/{kind}/{key.address}", height=height)
                for key in (REQUESTER, OTHER)
                for kind in ("accounts", "escrows")
            ]
            answers += [
                self.get(f"/v1/accounts/{self.key.address}", height=height),
                self.get("/v1/fees", height=height),
            ]
            if all(a.status_code == 200 for a in answers):
                break
            assert {a.status_code for a in answers} <= {200, 404}, [a.text for a in answers]
        docs = [a.json() for a in answers]
        fees = docs[5]
        return {
            REQUESTER.address: (docs[0]["balance"], docs[1]["amount"]["amount"]),
            OTHER.address: (docs[2]["balance"], docs[3]["amount"]["amount"]),
            "validator and fee pool": docs[4]["balance"] + fees["pool"] + fees["held"],
        }


def make_home(root: Path, **params) -> Path:
    accounts = tuple({"address": k.address, "balance": 10**12} for k in (REQUESTER, OTHER))
    home = make_cli_home(root, "usage", "uoc-usagetest", {**PARAMS, **params}, accounts=accounts)
    (home / "keys").mkdir(exist_ok=True, mode=0o700)
    return home


def receipt(node: Node, request_id: str, **fields) -> Receipt:
    values = dict(
        request_id=request_id,
        requester=REQUESTER.address,
        provider=node.key.address,
        model="m1",
        tokens=Tokens(1200, 345),
        price_ceiling=10**10,
        expires_at=10**6,
        workforce="research",
        function="summaries",
        worker="agent-7",
    )
    return Receipt(**{**values, **fields})


def usage_body(node: Node, r: Receipt, key: PrivateKey = REQUESTER) -> dict:
    signature = base64.b64encode(sign_receipt(key, node.chain_id, r)).decode()
    return {"receipt": r.to_json(), "requester_signature": signature}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    yield from start_node(make_home(tmp_path_factory.mktemp("usage")))


@pytest.fixture(scope="module")
def dynamic_node(tmp_path_factory):
    yield from start_node(make_home(tmp_path_factory.mktemp("usage-dynamic"), pricing_mode="dynamic"))


def start_node(home: Path):
    """A node of `home` with model m1 active and the requester's escrow funded."""
    process = Node(home)
    try:
        wait_until(lambda: process.get("/v1/status").json()["height"] >= 2, "the node commits", ignore=RETRYABLE)
        answer = process.post_admin("/v1/admin/models", {"id": "m1", "units_of_compute_per_token": UNITS})
        assert answer.status_code == 200, answer.text
        vote = MsgVote(answer.json()["proposal_id"], "yes")
        assert process.post_tx(sign_tx(process.key, process.chain_id, process.sequence(process.key), [vote])).ok
        wait_until(lambda: process.get("/v1/pricing").json()["models"], "m1 is active", ignore=RETRYABLE)
        funded = process.post_tx(sign_tx(REQUESTER, process.chain_id, 0, [MsgFundEscrow(10**9)]))
        assert funded.json()["code"] == "ok", funded.text
        yield process
    finally:
        assert process.stop() == 0


def assert_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"] and "\n" not in error["message"]


def test_the_admin_api_settles_a_signed_receipt_once_committed_at_the_epoch_price(node):
    before = node.money()
    answer = node.post_admin("/v1/admin/usage", usage_body(node, receipt(node, "http-1")))
    assert answer.status_code == 200, answer.text
    settlement = answer.json()["settlement"]
    price = node.get(f"/v1/epochs/{settlement['epoch']}").json()["price"]
    charged = (1200 + 345) * UNITS * price
    fee = charged * 250 // 10_000
    assert settlement["amountCharged"] == {"amount": charged, "currency": "NGONKA"}
    assert settlement["providerPayout"] == {"amount": charged - fee, "currency": "NGONKA"}
    assert settlement["exchangeFee"] == {"amount": fee, "currency": "NGONKA"}
    assert settlement["status"] == "settled" and settlement["tx_hash"] == answer.json()["tx_hash"]
    after = node.money()
    assert after[REQUESTER.address][1] == before[REQUESTER.address][1] - charged
    served = node.get("/v1/settlements/http-1", requester=REQUESTER.address).json()
    assert served == settlement


def test_the_charge_report_is_schema_valid_and_its_lines_sum_exactly_to_the_charge(node):
    node.post_admin("/v1/admin/usage", usage_body(node, receipt(node, "report-1")))
    validator = jsonschema_rs.Draft7Validator(SCHEMAS["charge_report"])
    for mode in ("summary", "full"):
        answer = node.get("/v1/settlements/report-1", {"PAC-Charge-Report": mode}, requester=REQUESTER.address)
        assert answer.status_code == 200 and answer.headers["PAC-Charge-Report"] == mode
        report = answer.json()["charge_report"]
        validator.validate(report)
        lines = [Decimal(c["amount"]["value"]) for c in report["charges"]]
        assert sum(lines) == Decimal(report["total"]["amount"]["value"]) == answer.json()["amountCharged"]["amount"]
        assert [m["quantity"] for m in report["measures"]] == [1200, 345]
    plain = node.get("/v1/settlements/report-1", requester=REQUESTER.address)
    assert "charge_report" not in plain.json() and plain.headers["PAC-Charge-Report"] == "none"


def test_the_price_model_is_acp_1_schema_valid_and_cached_until_the_epoch_changes(node):
    answer = node.get("/.well-known/acp-price-model")
    assert answer.status_code == 200, answer.text
    model = answer.json()
    jsonschema_rs.Draft7Validator(SCHEMAS["price_model"]).validate(model)
    epoch = node.get("/v1/status").json()["epoch"]
    assert [(c["resource"]["token_model_id"], c["resource"]["direction"]) for c in model["components"]] == [
        ("m1", "in"),
        ("m1", "out"),
    ]
    price = node.get("/v1/pricing").json()["models"][0]
    assert model["components"][0]["rate"]["amount"] == price["price_per_token_str"]
    assert "must-revalidate" in answer.headers["Cache-Control"] and "max-age=" in answer.headers["Cache-Control"]
    for _ in range(50):  # a revalidation within one epoch is a 304 (retried if an epoch ended in between)
        first = node.get("/v1/status").json()["epoch"]
        etag = node.get("/.well-known/acp-price-model").headers["ETag"]
        again = node.get("/.well-known/acp-price-model", {"If-None-Match": etag})
        epoch = node.get("/v1/status").json()["epoch"]
        if epoch == first:
            assert again.status_code == 304 and again.headers["ETag"] == etag
            break
    else:
        raise AssertionError("no two requests fell in one epoch")
    wait_until(lambda: node.get("/v1/status").json()["epoch"] > epoch, "the next epoch", ignore=RETRYABLE)
    assert node.get("/.well-known/acp-price-model").headers["ETag"] != etag


def test_with_dynamic_pricing_the_price_model_names_its_block_and_is_not_cached(dynamic_node):
    """Dynamic prices move each block: the price model's ETag and model_id name the block its prices
    apply to, max-age is 0, and a settlement's charge report names the model of its own block."""
    node = dynamic_node
    answer = node.post_admin("/v1/admin/usage", usage_body(node, receipt(node, "dyn-1")))
    assert answer.status_code == 200, answer.text
    settlement = answer.json()["settlement"]
    assert settlement["price_record"]["pricing_mode"] == "dynamic"
    first = node.get("/.well-known/acp-price-model")
    assert first.status_code == 200, first.text
    jsonschema_rs.Draft7Validator(SCHEMAS["price_model"]).validate(first.json())
    assert first.headers["Cache-Control"] == "public, max-age=0, must-revalidate"
    chain_id, epoch, block = first.headers["ETag"].strip('"').split(":")
    assert first.json()["model_id"] == f"urn:uoc:price-model:{chain_id}:epoch-{epoch}:height-{block}"
    height = node.get("/v1/status").json()["height"]
    wait_until(lambda: node.get("/v1/status").json()["height"] > height + 1, "two more blocks", ignore=RETRYABLE)
    later = node.get("/.well-known/acp-price-model", {"If-None-Match": first.headers["ETag"]})
    assert later.status_code == 200 and later.headers["ETag"] != first.headers["ETag"]
    report = node.get("/v1/settlements/dyn-1", {"PAC-Charge-Report": "full"}, requester=REQUESTER.address).json()
    assert report["charge_report"]["model_id"].endswith(f":epoch-{settlement['epoch']}:height-{settlement['height']}")
    assert report["charge_report"]["audit"]["price_record"]["pricing_mode"] == "dynamic"


def test_pricing_states_the_price_per_million_tokens_both_ways(node):
    (model,) = node.get("/v1/pricing").json()["models"]
    assert model["inputPricePerMTok"] == model["outputPricePerMTok"] == model["price_per_token"] * 10**6


def test_cost_records_and_their_totals_by_attribution_prefix_say_how_many_records_they_cover(node):
    node.post_admin("/v1/admin/usage", usage_body(node, receipt(node, "cost-1", function="translation")))
    records = node.get("/v1/cost-records", requester=REQUESTER.address, **{"pagination.limit": 1000}).json()
    (record,) = [r for r in records["records"] if r["envelope_id"] == "cost-1"]
    assert record["units"]["tokens.input"] == 1200 and record["is_estimate"] is False
    assert record["attribution"] == {"workforce": "research", "function": "translation", "worker": "agent-7"}
    assert record["model_or_sku"] == "m1" and len(record["event_id"]) == 64
    totals = node.get("/v1/cost-records/totals", group_by="workforce/function", prefix="research/").json()
    groups = {g["group"]: g["records"] for g in totals["groups"]}
    assert groups["research/translation"] == 1 and totals["covered"] == sum(groups.values())
    everything = node.get("/v1/cost-records/totals", group_by="requester").json()
    assert everything["covered"] == len(records["records"])
    by_provider = node.get("/v1/settlements", provider=node.key.address).json()["settlements"]
    assert "cost-1" in [s["request_id"] for s in by_provider]


def test_uocd_signs_a_receipt_and_settles_it_and_queries_it_back(node, tmp_path, capsys):
    home = node.home
    write_secret(home / "keys" / "requester.json", render_key(REQUESTER))
    capsys.readouterr()
    out = tmp_path / "receipt.json"
    sign = ["receipt", "sign", "--home", str(home), "--from", "requester", "--request-id", "cli-1", "--out", str(out)]
    sign += ["--provider", node.key.address, "--model", "m1", "--tokens", "10,5", "--price-ceiling", "10000000"]
    assert uocd([*sign, "--expires-at", "1000000", "--workforce", "ops"]) == 0
    signature = capsys.readouterr().out.strip()
    assert uocd(["tx", "settle", f"@{out}", signature, "--home", str(home), "--node", node.public]) == 0
    capsys.readouterr()
    query = ["query", "settlements", "--requester", REQUESTER.address, "--home", str(home), "--node", node.public]
    assert uocd([*query, "-o", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)["settlements"]
    assert "cli-1" in [s["request_id"] for s in listed]
    node_args = ["--home", str(home), "--node", node.public]
    assert uocd(["tx", "dispute", "cli-1", "--from", "requester", *node_args]) == 0
    assert uocd(["tx", "refund", REQUESTER.address, "cli-1", *node_args]) == 0
    assert uocd(["tx", "refund", REQUESTER.address, "cli-1", *node_args]) == 1  # already_refunded: exit 1
    capsys.readouterr()
    assert uocd(["query", "settlement", "cli-1", "--requester", REQUESTER.address, *node_args, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "refunded"
    assert uocd(["query", "cost-totals", "--group-by", "workforce", *node_args, "-o", "json"]) == 0
    assert "ops" not in [g["group"] for g in json.loads(capsys.readouterr().out)["groups"]]  # refunded: out


def test_the_openapi_document_lists_the_usage_routes(node):
    paths = node.get("/openapi.json").json()["paths"]
    for path in ("/v1/settlements/{request_id}", "/v1/settlements", "/v1/cost-records", "/v1/cost-records/totals"):
        assert "get" in paths[path], path
    assert "get" in paths["/.well-known/acp-price-model"] and "/v1/admin/usage" not in paths
    admin = node.get_admin("/openapi.json").json()["paths"]  # each listener documents its own routes
    assert "post" in admin["/v1/admin/usage"]
    header = [p for p in paths["/v1/settlements/{request_id}"]["get"]["parameters"] if p["in"] == "header"]
    assert header[0]["name"] == "PAC-Charge-Report"


# --- bad input ---------------------------------------------------------------------------------------

BAD_USAGE = [  # (case, how the receipt or its body changes, status, code)
    ("wrong signature", lambda n: usage_body(n, receipt(n, "bad-1"), OTHER), 403, "bad_requester_signature"),
    (
        "another provider's",
        lambda n: usage_body(n, receipt(n, "bad-10", provider=OTHER.address)),
        403,
        "not_receipt_provider",
    ),
    ("unknown model", lambda n: usage_body(n, receipt(n, "bad-2", model="m9")), 422, "inactive_model"),
    ("over the ceiling", lambda n: usage_body(n, receipt(n, "bad-3", price_ceiling=1)), 422, "over_ceiling"),
    ("expired", lambda n: usage_body(n, receipt(n, "bad-4", expires_at=1)), 422, "receipt_expired"),
    ("reused request id", lambda n: usage_body(n, receipt(n, "http-1")), 422, "duplicate_request_id"),
    (
        "escrow too small",
        lambda n: usage_body(n, receipt(n, "bad-5", tokens=Tokens(10**9, 0), price_ceiling=10**17)),
        422,
        "insufficient_escrow",
    ),
    (
        "negative tokens",
        lambda n: {
            **usage_body(n, receipt(n, "bad-6")),
            "receipt": {**receipt(n, "bad-6").to_json(), "tokens": {"in": -1, "out": 0}},
        },
        400,
        "invalid_tokens",
    ),
    (
        "attribution with a control character",
        lambda n: {
            **usage_body(n, receipt(n, "bad-7")),
            "receipt": {**receipt(n, "bad-7").to_json(), "role": "a\u0001"},
        },
        400,
        "invalid_attribution",
    ),
    (
        "attribution over its length",
        lambda n: {
            **usage_body(n, receipt(n, "bad-8")),
            "receipt": {**receipt(n, "bad-8").to_json(), "role": "r" * 65},
        },
        400,
        "invalid_attribution",
    ),
    ("missing signature", lambda n: {"receipt": receipt(n, "bad-9").to_json()}, 400, "missing_field"),
]


@pytest.mark.parametrize(("case", "make", "status", "code"), BAD_USAGE, ids=[b[0] for b in BAD_USAGE])
def test_bad_usage_is_a_4xx_naming_the_rule_and_moves_nothing(node, case, make, status, code):
    if case == "reused request id":
        node.post_admin("/v1/admin/usage", usage_body(node, receipt(node, "http-1")))
    before = node.money()
    assert_error(node.post_admin("/v1/admin/usage", make(node)), status, code)
    assert node.money() == before


def test_a_refund_by_someone_else_is_refused_and_moves_nothing(node):
    node.post_admin("/v1/admin/usage", usage_body(node, receipt(node, "refund-1")))
    before = node.money()
    raw = sign_tx(OTHER, node.chain_id, node.sequence(OTHER), [MsgRefund(REQUESTER.address, "refund-1")])
    answer = node.post_tx(raw)
    assert answer.json().get("code") == "not_provider" or answer.json()["error"]["code"] == "not_provider"
    assert node.money() == before


def test_bad_settlement_reads_are_4xx(node):
    assert_error(node.get("/v1/settlements/http-1"), 400, "missing_parameter")
    assert_error(node.get("/v1/settlements/nope", requester=REQUESTER.address), 404, "not_found")
    bad_header = node.get("/v1/settlements/http-1", {"PAC-Charge-Report": "all"}, requester=REQUESTER.address)
    assert_error(bad_header, 400, "invalid_header")
    assert_error(node.get("/v1/cost-records/totals", group_by="colour"), 400, "bad_query")
    both = node.get("/v1/settlements", provider=node.key.address, model="m1").json()["settlements"]  # filters combine
    assert both and all(s["provider"] == node.key.address and s["model"] == "m1" for s in both)
