"""The HTTP API against a real 4-validator network of `uocd start` processes (block interval ~200 ms,
epoch length 5): the seed's example requests, governance through `POST /v1/txs`, strict validation of
every admin body (nothing reaches the chain), auth, JSON errors for 401/404/405/413/415, the metrics
exposition, HEAD on GET routes, and `schemathesis run --checks all` over each listener's `/openapi.json`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import swagger_ui_bundle

from chain.tx import MsgSend, MsgVote, sign_tx
from tests.node.netutil import ApiNode, make_cli_network, read_metric, read_metrics, wait_until

RETRYABLE = (requests.RequestException,)  # a node not answering yet
EPOCH_LENGTH = 5
GENESIS_PARAMS = {"epoch_length": EPOCH_LENGTH, "voting_period": 12, "max_deposit_period": 12, "min_deposit": 1000}
TIMEOUT = 10


class Node(ApiNode):
    """A `uocd start` child process with its API URLs and admin auth header."""

    def get(self, path: str, **params) -> requests.Response:
        return requests.get(self.public + path, params=params, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    homes = make_cli_network(tmp_path_factory.mktemp("apinet"), "api", GENESIS_PARAMS)
    nodes = [Node(h) for h in homes]
    try:
        wait_until(
            lambda: all(n.get("/v1/status").json()["height"] >= 2 for n in nodes),
            "all four nodes commit",
            ignore=RETRYABLE,
        )
        yield nodes
    finally:
        codes = [n.stop() for n in nodes]
    assert codes == [0] * len(nodes), "every node stops cleanly on SIGTERM"


@pytest.fixture(scope="module")
def operator(network) -> Node:
    return network[0]


def admin_post(node: Node, path: str, body, *, headers=None, data=None) -> requests.Response:
    headers = {**node.auth, **(headers or {})}
    if data is None:
        return requests.post(node.admin + path, json=body, headers=headers, timeout=30)
    return requests.post(node.admin + path, data=data, headers=headers, timeout=30)


def mempool_size(node: Node) -> int:
    return int(read_metric(node.metrics, "cometbft_mempool_size"))


def chain_view(node: Node) -> tuple[int, int]:
    """(the operator's committed sequence, the node's mempool size) once earlier txs have left the mempool:
    what a refused request must not change."""
    wait_until(lambda: mempool_size(node) == 0, "the mempool is empty", timeout=20, ignore=RETRYABLE)
    return node.get(f"/v1/accounts/{node.key.address}").json()["sequence"], mempool_size(node)


def assert_error(response: requests.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


# =============================================================================================
# the seed's example requests and governance
# =============================================================================================
def test_status_and_pricing_have_the_contract_fields(network):
    status = network[1].get("/v1/status").json()
    assert set(status) == {
        "chain_id",
        "moniker",
        "height",
        "app_hash",
        "epoch",
        "unit_of_compute_price",
        "catching_up",
        "peers",
        "validator_address",
    }
    assert status["chain_id"] == "uoc-apitest" and status["validator_address"] == network[1].key.address
    pricing = network[1].get("/v1/pricing").json()
    assert set(pricing) == {
        *("unit_of_compute_price", "unit_of_compute_price_str", "denom", "epoch", "models"),  # the contract's
        *("confidence", "confidence_str", "status", "age_epochs", "participation"),  # the ballot's quality
    }
    assert pricing["denom"] == "ngonka" and pricing["unit_of_compute_price_str"] == str(
        pricing["unit_of_compute_price"]
    )
    validators = network[2].get("/v1/validators").json()["validators"]
    assert sorted(v["address"] for v in validators) == sorted(n.key.address for n in network)


def test_seed_price_vote_is_committed_and_read_back(operator):
    response = admin_post(operator, "/v1/admin/unit-of-compute-price-proposal", {"price": 1000, "denom": "icoin"})
    assert response.status_code == 200, response.text
    vote = response.json()
    assert vote["price"] == 1000 and vote["denom"] == "icoin" and vote["price_ngonka"] == 1000 * 10**9
    assert vote["effective_epoch"] == (vote["height"] - 1) // EPOCH_LENGTH + 1
    stored = requests.get(operator.admin + "/v1/admin/unit-of-compute-price-proposal", headers=operator.auth, timeout=9)
    assert stored.status_code == 200
    assert stored.json() == {
        "price": 1000,
        "denom": "icoin",
        "price_ngonka": 1000 * 10**9,
        "proposed_at_height": vote["height"],
        "proposed_at_epoch": vote["effective_epoch"] - 1,
        "vote_mode": "open",
        "commits": [],
    }
    tx = operator.get(f"/v1/txs/{vote['tx_hash']}").json()
    assert tx["height"] == vote["height"] and tx["code"] == "ok"
    assert tx["tx"]["body"]["messages"][0]["@type"] == "MsgSubmitPriceProposal"
    body = tx["tx"]["body"]  # the node set gas and fee itself: the simulated use × 1.2, the least fee
    assert 5_000 < body["gas_limit"] < 20_000 and body["fee"] == -(-body["gas_limit"] // 100)


def test_two_quick_admin_votes_do_not_collide_on_the_sequence(operator):
    import concurrent.futures

    path = "/v1/admin/unit-of-compute-price-proposal"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda p: admin_post(operator, path, {"price": p, "denom": "ngonka"}), (700, 800)))
    assert [r.status_code for r in results] == [200, 200], [r.text for r in results]
    assert len({r.json()["tx_hash"] for r in results}) == 2


def test_seed_model_registration_passes_governance_and_appears_in_pricing(network, operator):
    response = admin_post(operator, "/v1/admin/models", {"id": "model-alpha", "units_of_compute_per_token": 10})
    assert response.status_code == 200, response.text
    proposed = response.json()
    assert set(proposed) == {"proposal_id", "tx_hash", "deposit", "voting_end_height"}
    assert proposed["deposit"] == {"amount": GENESIS_PARAMS["min_deposit"], "denom": "ngonka"}
    proposal_id = proposed["proposal_id"]

    # every validator votes yes with a signed MsgVote posted to a different node
    for i, node in enumerate(network):
        sequence = node.get(f"/v1/accounts/{node.key.address}").json()["sequence"]
        raw = sign_tx(node.key, node.chain_id, sequence, [MsgVote(proposal_id, "yes")])
        target = network[(i + 1) % len(network)]
        posted = requests.post(
            target.public + "/v1/txs",
            params={"wait": "commit"},
            data=raw,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert posted.status_code in (200, 202), posted.text
        if posted.status_code == 200:
            assert posted.json()["code"] == "ok" and posted.json()["status"] == "committed"

    def passed():
        proposal = operator.get(f"/v1/governance/proposals/{proposal_id}").json()
        return proposal if proposal["status"] == "passed" else None

    proposal = wait_until(passed, "the model proposal passes", timeout=40, ignore=RETRYABLE)
    passed_epoch = (proposal["voting_end_height"] - 1) // EPOCH_LENGTH

    def listed():
        pricing = network[3].get("/v1/pricing").json()
        if pricing["epoch"] <= passed_epoch:
            assert all(m["id"] != "model-alpha" for m in pricing["models"]), "active before the epoch after it passed"
        return pricing if any(m["id"] == "model-alpha" for m in pricing["models"]) else None

    pricing = wait_until(listed, "model-alpha is priced", timeout=30, ignore=RETRYABLE)
    assert pricing["epoch"] >= passed_epoch + 1
    (alpha,) = [m for m in pricing["models"] if m["id"] == "model-alpha"]
    assert alpha == {
        "id": "model-alpha",
        "units_of_compute_per_token": 10,
        "price_per_token": 10 * pricing["unit_of_compute_price"],
        "price_per_token_str": str(10 * pricing["unit_of_compute_price"]),
        "inputPricePerMTok": 10 * pricing["unit_of_compute_price"] * 10**6,
        "inputPricePerMTok_str": str(10 * pricing["unit_of_compute_price"] * 10**6),
        "outputPricePerMTok": 10 * pricing["unit_of_compute_price"] * 10**6,
        "outputPricePerMTok_str": str(10 * pricing["unit_of_compute_price"] * 10**6),
    }
    models = network[2].get("/v1/models/registered").json()
    assert any(m["id"] == "model-alpha" for m in models["models"]) and models["registry_version"] >= 1
    proposals = operator.get("/v1/governance/proposals", status="passed").json()["proposals"]
    assert proposal_id in [p["id"] for p in proposals]


def test_a_tx_rejected_by_the_chain_is_a_4xx_with_its_code(network):
    node = network[1]
    raw = sign_tx(node.key, node.chain_id, 10**6, [MsgVote(1, "yes")])  # wrong sequence: right in another state
    posted = requests.post(node.public + "/v1/txs", data=raw, headers={"Content-Type": "application/json"}, timeout=9)
    error = assert_error(posted, 409, "wrong_sequence")
    assert "sequence" in error["message"]
    assert_error(requests.post(node.public + "/v1/txs", json={"body": {}}, timeout=9), 400, "malformed")
    assert_error(node.get("/v1/txs/" + "AB" * 32), 404, "not_found")
    assert_error(node.get("/v1/txs/nothex"), 400, "invalid_hash")


def with_signature_of(raw: bytes, key) -> bytes:
    """A signed tx whose signature and pubkey are replaced by `key`'s signature of the same body."""
    doc = json.loads(raw)
    other = json.loads(
        sign_tx(key, doc["body"]["chain_id"], doc["body"]["sequence"], [MsgSend(to=key.address, amount=1)])
    )
    return json.dumps({**doc, "pubkey": other["pubkey"], "signature": other["signature"]}).encode()


def test_a_bad_tx_is_a_4xx_naming_the_rule_and_changes_nothing_and_simulate_gives_the_gas(network):
    """400 malformed (a key twice), 403 not signed by its sender, 409 a wrong sequence, 422 another rule; any
    JSON spelling of a tx is taken (the node submits its canonical encoding)."""
    node = network[3]
    address = node.key.address
    before = node.get(f"/v1/accounts/{address}").json()
    send = [MsgSend(to=address, amount=1)]
    cases = [
        (
            sign_tx(node.key, node.chain_id, before["sequence"], send, gas_limit=100_000, fee=999),
            422,
            "insufficient_fee",
        ),
        (sign_tx(node.key, node.chain_id, before["sequence"], send, gas_limit=3_000, fee=10**6), 422, "out_of_gas"),
        (sign_tx(node.key, "uoc-elsewhere", before["sequence"], send), 422, "wrong_chain_id"),
        (with_signature_of(sign_tx(node.key, node.chain_id, before["sequence"], send), network[2].key), 403, None),
        (b'{"body": {}, "body": {}}', 400, "invalid_json"),
    ]
    headers = {"Content-Type": "application/json"}
    for raw, status, code in cases:
        error = assert_error(requests.post(node.public + "/v1/txs", data=raw, headers=headers, timeout=9), status, code)
        assert "\n" not in error["message"]
    after = node.get(f"/v1/accounts/{address}").json()
    assert (after["balance"], after["sequence"]) == (before["balance"], before["sequence"])
    probe = sign_tx(node.key, node.chain_id, before["sequence"], send)
    simulated = requests.post(node.public + "/v1/txs/simulate", data=probe, headers=headers, timeout=9)
    assert simulated.status_code == 200, simulated.text
    assert simulated.json()["min_gas_price"] == "0.01" and 5_000 < simulated.json()["gas_used"] < 50_000
    spelled = json.dumps(json.loads(probe), indent=2).encode()  # any JSON spelling: the node encodes it canonically
    respelled = requests.post(node.public + "/v1/txs/simulate", data=spelled, headers=headers, timeout=9)
    assert respelled.status_code == 200 and respelled.json() == simulated.json()


# =============================================================================================
# bad input: every admin body, table-driven; nothing reaches the chain
# =============================================================================================
PRICE_CASES = [
    ({"denom": "icoin"}, "missing_field", "price"),
    ({"price": 1000}, "missing_field", "denom"),
    ({"price": 1000, "denom": "icoin", "extra": 1}, "unknown_field", "extra"),
    ({"price": 0, "denom": "icoin"}, "invalid_amount", "price"),
    ({"price": -5, "denom": "icoin"}, "invalid_amount", "price"),
    ({"price": 1.5, "denom": "icoin"}, "invalid_amount", "price"),
    ({"price": "1000", "denom": "icoin"}, "invalid_amount", "price"),
    ({"price": True, "denom": "icoin"}, "invalid_amount", "price"),
    ({"price": None, "denom": "icoin"}, "invalid_amount", "price"),
    ({"price": 10**19, "denom": "icoin"}, "amount_overflow", "price"),
    ({"price": 2**70, "denom": "ngonka"}, "amount_overflow", "price"),
    ({"price": 1000, "denom": "dollar"}, "invalid_denom", "denom"),
    ({"price": 1000, "denom": 5}, "invalid_denom", "denom"),
    ({"price": 1000, "denom": None}, "invalid_denom", "denom"),
    ([1000, "icoin"], "invalid_json", "object"),
    ("1000 icoin", "invalid_json", "object"),
]
MODEL_CASES = [
    ({"units_of_compute_per_token": 10}, "missing_field", "id"),
    ({"id": "m"}, "missing_field", "units_of_compute_per_token"),
    ({"id": "m", "units_of_compute_per_token": 10, "deposit": 5}, "unknown_field", "deposit"),
    ({"id": "m", "units_of_compute_per_token": 0}, "invalid_units", "units_of_compute_per_token"),
    ({"id": "m", "units_of_compute_per_token": -1}, "invalid_units", "units_of_compute_per_token"),
    ({"id": "m", "units_of_compute_per_token": 1.5}, "invalid_units", "units_of_compute_per_token"),
    ({"id": "m", "units_of_compute_per_token": "10"}, "invalid_units", "units_of_compute_per_token"),
    ({"id": "m", "units_of_compute_per_token": True}, "invalid_units", "units_of_compute_per_token"),
    ({"id": "m", "units_of_compute_per_token": None}, "invalid_units", "units_of_compute_per_token"),
    ({"id": "m", "units_of_compute_per_token": 2**63}, "invalid_units", "units_of_compute_per_token"),
    ({"id": "", "units_of_compute_per_token": 10}, "invalid_model_id", "id"),
    ({"id": "bad id!", "units_of_compute_per_token": 10}, "invalid_model_id", "id"),
    ({"id": "m" * 129, "units_of_compute_per_token": 10}, "invalid_model_id", "id"),
    ({"id": 7, "units_of_compute_per_token": 10}, "invalid_model_id", "id"),
    ({"id": "m\x1b[2J", "units_of_compute_per_token": 10}, "invalid_model_id", "id"),  # a control character
    ({"id": "<b>m</b>", "units_of_compute_per_token": 10}, "invalid_model_id", "id"),  # markup
    ([], "invalid_json", "object"),
    (42, "invalid_json", "object"),
]
RAW_CASES = [  # (body bytes, content type, status, code)
    (b"{not json", "application/json", 400, "invalid_json"),
    (b'{"price": NaN, "denom": "icoin"}', "application/json", 400, "invalid_json"),
    (b"\xff\xfe", "application/json", 400, "invalid_json"),
    (b"", "application/json", 400, "invalid_json"),
    (b"price=1000&denom=icoin", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    (b"{}", "text/plain", 415, "unsupported_media_type"),
    (b'{"price": 1000, "denom": "icoin"}', None, 415, "unsupported_media_type"),  # no Content-Type: requests omits it
    (b'{"price": 1, "denom": "icoin", "pad": "' + b"x" * 20_000 + b'"}', "application/json", 413, "body_too_large"),
]
ADMIN_POSTS = ("/v1/admin/unit-of-compute-price-proposal", "/v1/admin/models")


@pytest.mark.parametrize(("body", "code", "named"), PRICE_CASES)
def test_bad_price_vote_body_is_a_400_naming_the_field_and_changes_nothing(operator, body, code, named):
    before = chain_view(operator)
    error = assert_error(admin_post(operator, ADMIN_POSTS[0], body), 400, code)
    assert named in error["message"]
    assert chain_view(operator) == before


@pytest.mark.parametrize(("body", "code", "named"), MODEL_CASES)
def test_bad_model_body_is_a_400_naming_the_field_and_changes_nothing(operator, body, code, named):
    before = chain_view(operator)
    error = assert_error(admin_post(operator, ADMIN_POSTS[1], body), 400, code)
    assert named in error["message"]
    assert chain_view(operator) == before


@pytest.mark.parametrize("path", ADMIN_POSTS)
@pytest.mark.parametrize(("data", "content_type", "status", "code"), RAW_CASES)
def test_non_json_or_oversized_admin_body_is_refused_and_changes_nothing(
    operator, path, data, content_type, status, code
):
    before = chain_view(operator)
    assert_error(admin_post(operator, path, None, data=data, headers={"Content-Type": content_type}), status, code)
    assert chain_view(operator) == before


def test_oversized_tx_is_a_413(network):
    response = requests.post(network[0].public + "/v1/txs", json={"pad": "x" * 200_000}, timeout=9)
    assert_error(response, 413, "body_too_large")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}],
    ids=["absent", "wrong", "basic", "empty"],
)
@pytest.mark.parametrize(
    ("method", "path"), [("POST", ADMIN_POSTS[0]), ("GET", ADMIN_POSTS[0]), ("POST", ADMIN_POSTS[1]), ("GET", "/nope")]
)
def test_admin_request_without_the_right_token_is_a_401_and_changes_nothing(operator, headers, method, path):
    before = chain_view(operator)
    body = {"price": 1000, "denom": "icoin"} if path == ADMIN_POSTS[0] else {"id": "x", "units_of_compute_per_token": 1}
    response = requests.request(method, operator.admin + path, json=body, headers=headers, timeout=9)
    assert_error(response, 401, "unauthorized")
    assert chain_view(operator) == before


@pytest.mark.parametrize("path", ["/v1/status", "/v1/pricing", "/v1/validators", "/openapi.json", "/docs"])
def test_head_on_a_get_route_answers_its_status_and_headers_without_a_body(operator, path):
    got = operator.get(path)
    head = requests.head(operator.public + path, timeout=TIMEOUT)
    assert head.status_code == got.status_code == 200 and head.content == b""
    assert head.headers["Content-Type"] == got.headers["Content-Type"]
    assert head.headers["Link"] == got.headers["Link"]


def test_head_on_the_admin_listener_needs_the_token_too(operator):
    assert (
        requests.head(operator.admin + "/v1/admin/unit-of-compute-price-proposal", timeout=TIMEOUT).status_code == 401
    )
    with_token = requests.head(
        operator.admin + "/v1/admin/unit-of-compute-price-proposal", headers=operator.auth, timeout=TIMEOUT
    )
    assert with_token.status_code == 200 and with_token.content == b""


def test_unknown_routes_and_methods_are_json_404_and_405_on_both_listeners(operator):
    assert_error(operator.get("/v1/nope"), 404, "not_found")
    assert_error(requests.get(operator.admin + "/v1/nope", headers=operator.auth, timeout=9), 404, "not_found")
    error = assert_error(requests.delete(operator.public + "/v1/pricing", timeout=9), 405, "method_not_allowed")
    assert "GET" in error["message"]
    response = requests.put(operator.admin + "/v1/admin/models", headers=operator.auth, timeout=9)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"
    simulate = requests.options(operator.public + "/v1/txs/simulate", timeout=9)  # {hash} also matches the path
    assert_error(simulate, 405, "method_not_allowed")
    assert simulate.headers["Allow"] == "POST"
    simulate = requests.get(operator.public + "/v1/txs/simulate", timeout=9)
    assert_error(simulate, 405, "method_not_allowed")
    assert simulate.headers["Allow"] == "POST"
    assert requests.head(operator.public + "/v1/txs/simulate", timeout=9).status_code == 405
    assert_error(operator.get("/v1/epochs/x1"), 400, "invalid_parameter")
    assert_error(operator.get("/v1/epochs/" + "9" * 5000), 400, "invalid_parameter")
    assert_error(operator.get("/v1/governance/proposals/" + "9" * 5000), 400, "invalid_parameter")
    assert_error(operator.get("/v1/pricing/history", to_epoch="9" * 5000), 400, "invalid_parameter")
    assert_error(operator.get("/v1/epochs/999999"), 404)
    assert_error(operator.get("/v1/pricing/history", from_epoch="-1"), 400, "invalid_parameter")
    assert_error(operator.get("/v1/governance/proposals", status="open"), 400)
    assert_error(operator.get("/v1/governance/proposals/0"), 400)
    assert_error(operator.get("/v1/governance/proposals/999"), 404)
    assert_error(operator.get("/v1/accounts/not-an-address"), 400, "invalid_address")


# =============================================================================================
# metrics and OpenAPI
# =============================================================================================
def test_metrics_are_served_on_their_own_listener_with_the_route_histograms_and_not_on_the_public_one(operator):
    operator.get("/v1/pricing")
    samples = read_metrics(operator.metrics)
    for name in ("cometbft_consensus_height", "uoc_epoch", "uoc_unit_of_compute_price_ngonka", "cometbft_p2p_peers"):
        assert name in samples
    requests_key = (("listener", "public"), ("method", "GET"), ("route", "/v1/pricing"), ("status", "200"))
    assert samples["uoc_http_requests_total"][requests_key] >= 1
    assert samples["uoc_http_request_duration_seconds_count"][requests_key[:3]] >= 1
    assert 1 <= samples["cometbft_p2p_peers"][()] <= 3
    assert_error(operator.get("/metrics"), 404)


@pytest.mark.parametrize("listener", ["public", "admin", "metrics"])
def test_each_listener_serves_its_own_document_listing_exactly_its_routes(operator, listener):
    from node.api import ApiState, build_app

    base = {"public": operator.public, "admin": operator.admin, "metrics": f"http://{operator.metrics}"}[listener]
    response = requests.get(base + "/openapi.json", headers=operator.auth, timeout=TIMEOUT)
    document = response.json()
    assert response.status_code == 200 and document["openapi"].startswith("3.")
    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    served = {(r.method, r.resource.canonical) for r in build_app(ApiState.__new__(ApiState), listener).router.routes()}
    assert documented | {("HEAD", path) for method, path in documented if method == "GET"} == served


@pytest.mark.parametrize(
    ("listener", "path", "status"),
    [
        ("public", "/v1/pricing", 200),
        ("public", "/v1/nowhere", 404),
        ("public", "/docs", 200),
        ("admin", "/v1/admin/unit-of-compute-price-proposal", 401),
        ("metrics", "/metrics", 200),
    ],
)
def test_every_response_links_its_listeners_openapi_document(operator, listener, path, status):
    base = {"public": operator.public, "admin": operator.admin, "metrics": f"http://{operator.metrics}"}[listener]
    response = requests.get(base + path, timeout=TIMEOUT)
    assert response.status_code == status
    assert response.links["service-desc"]["url"] == "/openapi.json"
    assert ("service-doc" in response.links) == (listener == "public")


def test_docs_serve_the_swagger_ui_from_the_node_itself(operator):
    page = operator.get("/docs")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    scripts = re.findall(r'(?:src|href)="(/docs/[^"]+)"', page.text)
    assert "/docs/swagger-ui-bundle.js" in scripts and 'url: "/openapi.json"' in page.text
    shipped = Path(swagger_ui_bundle.swagger_ui_path)
    for asset in scripts:
        answer = operator.get(asset)
        assert answer.status_code == 200 and answer.content == (shipped / asset.removeprefix("/docs/")).read_bytes()
    assert operator.get("/docs/..%2Fconfig.toml").status_code == 404
    assert operator.get("/docs/index.j2").status_code == 404


# =============================================================================================
# schemathesis over /openapi.json
# =============================================================================================
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
ROOT = Path(__file__).resolve().parents[2]  # its schemathesis.toml loads the hooks of the custom formats


ENDLESS = ("/v1/dashboard/events",)  # an event stream never ends: tests/node/test_dashboard.py reads it


def run_schemathesis(base_url: str, headers: dict[str, str], examples: int, excluded: tuple[str, ...] = ()) -> int:
    """`schemathesis run --checks all` against a listener's own /openapi.json, as a user runs it from the
    repository (every phase: examples, coverage, fuzzing, stateful; every check, no 5xx among them), with a
    fixed seed and no example database, every operation but the `excluded` paths; how many test cases it
    generated, once it finds nothing."""
    args = [str(SCHEMATHESIS), "run", base_url + "/openapi.json", "--checks", "all", "--max-examples", str(examples)]
    args += ["--seed", "20", "--generation-database", "none", "--no-color"]
    for path in excluded:
        args += ["--exclude-path", path]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    selected = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", done.stdout)
    assert selected is not None, done.stdout[-2000:]
    assert int(selected[1]) == int(selected[2]) - len(excluded) == int(selected[3]), done.stdout[-2000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert generated is not None and generated[1] == generated[2], done.stdout[-2000:]
    return int(generated[1])


def test_schemathesis_run_checks_all_finds_nothing_on_the_public_listener(operator):
    assert run_schemathesis(operator.public, {}, examples=10, excluded=ENDLESS) >= 1000


def test_schemathesis_run_checks_all_finds_nothing_on_the_admin_listener(operator):
    assert run_schemathesis(operator.admin, operator.auth, examples=10) >= 200


@pytest.mark.parametrize(("height", "status"), [("1", 200), ("0", 400), ("x1", 400), ("999999999", 404)])
def test_a_committed_block_is_served_by_height(operator, height, status):
    response = operator.get(f"/v1/blocks/{height}")
    assert response.status_code == status
    if status == 200:
        doc = response.json()
        assert doc["height"] == 1 and doc["block"]["header"]["height"] == 1 and doc["commit"]["height"] == 1
        assert doc["block_id"] == doc["commit"]["block_id"]


def test_uocd_q_block_prints_the_block_the_api_serves(operator):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "uocd", "q", "block", "1", "--node", operator.public, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == operator.get("/v1/blocks/1").json()
