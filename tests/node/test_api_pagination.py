"""Paginated public queries, the admin token and the JSON Content-Type rule, and safe signing, against a real
`uocd start` process (one validator holding 100 of 105 power, so it commits alone; long governance periods,
so the lists stay put while the tests walk them).

Pagination: every list route, walked page by page with several limits, forwards and in reverse, is the
whole list (a max-limit page) in order, with `next_key` null on the last page; a bad key or limit is a
one-line 400 and changes nothing. Auth: the admin listener answers 401 without the token, on loopback too.
Content-Type: a body without `application/json` is a 415 on both listeners and reaches no mempool. Signing:
`uocd tx --chain-id` for another chain fails before anything is sent; `--offline --sequence` signs a tx the
node accepts (`uocd tx broadcast` sends it, after checking its chain id); `GET /v1/txs/{hash}` answers from
the tx index even with the block row gone."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import requests

from chain.crypto import PrivateKey
from chain.queries import MAX_PAGE_LIMIT, encode_page_key
from chain.tx import MsgDeposit, MsgSend, MsgSubmitProposal, MsgVote, RegisterModel, sign_tx
from tests.node.netutil import NodeProcess, free_port, make_cli_home, read_metric, wait_until
from uocd.main import main as uocd

RETRYABLE = (requests.RequestException,)
TIMEOUT = 10
JSON = {"Content-Type": "application/json"}
EXTRA = [PrivateKey.from_name(f"pagination-extra-{i}", salt="uoc-tests") for i in range(5)]
DEPOSITORS = [PrivateKey.from_name(f"pagination-depositor-{i}", salt="uoc-tests") for i in range(3)]
PARAMS = {"epoch_length": 2, "voting_period": 100_000, "max_deposit_period": 100_000, "min_deposit": 1000}


class Node(NodeProcess):
    def __init__(self, home: Path) -> None:
        super().__init__(home)
        self.public = f"http://{self.public}"
        self.admin = f"http://{self.admin}"

    def get(self, path: str, **params) -> requests.Response:
        return requests.get(self.public + path, params=params, timeout=TIMEOUT)

    def post_tx(self, raw: bytes) -> dict:
        response = requests.post(self.public + "/v1/txs", data=raw, params={"wait": "commit"}, headers=JSON, timeout=30)
        assert response.status_code == 200 and response.json()["code"] == "ok", response.text
        return response.json()

    def sequence(self, key: PrivateKey) -> int:
        return self.get(f"/v1/accounts/{key.address}").json()["sequence"]

    def mempool(self) -> int:
        return int(read_metric(self.metrics, "cometbft_mempool_size"))


def make_home(root: Path) -> Path:
    """`uocd init`, then a genesis with five more validators of stake 1 (the node keeps 100/105 of the power)."""
    extra = tuple({"address": k.address, "stake": 1} for k in EXTRA)
    return make_cli_home(root, "pages", "uoc-pagetest", PARAMS, validators=extra)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    process = Node(make_home(tmp_path_factory.mktemp("pages")))
    try:
        wait_until(lambda: process.get("/v1/status").json()["height"] >= 2, "the node commits", ignore=RETRYABLE)
        key = process.key
        funding = [MsgSend(k.address, 100_000) for k in [*DEPOSITORS, *EXTRA]]  # every tx pays a fee
        opened = [MsgSubmitProposal(RegisterModel(f"open-{i}", i + 1), 400) for i in range(6)]  # deposit period
        voting = [MsgSubmitProposal(RegisterModel(f"vote-{i}", i + 1), 1000) for i in range(6)]  # ids 7..12
        process.post_tx(sign_tx(key, process.chain_id, process.sequence(key), [*funding, *opened, *voting]))
        for depositor in DEPOSITORS:
            process.post_tx(sign_tx(depositor, process.chain_id, 0, [MsgDeposit(1, 100)]))
        for voter in [key, *EXTRA]:
            process.post_tx(sign_tx(voter, process.chain_id, process.sequence(voter), [MsgVote(7, "yes")]))
        wait_until(lambda: process.get("/v1/status").json()["epoch"] > 12, "epoch 12 is recorded", ignore=RETRYABLE)
        yield process
    finally:
        assert process.stop() == 0


def assert_error(response: requests.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"] and "\n" not in error["message"]
    return error["message"]


# =============================================================================================
# pagination walks
# =============================================================================================
LISTS = [  # (route, list field, filters, expected length)
    ("/v1/validators", "validators", {}, 6),
    ("/v1/pricing/history", "epochs", {"from_epoch": 1, "to_epoch": 12}, 12),
    ("/v1/governance/proposals", "proposals", {}, 12),
    ("/v1/governance/proposals", "proposals", {"status": "deposit_period"}, 6),
    ("/v1/governance/proposals/1/deposits", "deposits", {}, 4),
    ("/v1/governance/proposals/7/votes", "votes", {}, 6),
    ("/v1/models", "models", {}, 0),
    ("/v1/models/registered", "models", {}, 0),
    ("/v1/models/changes", "changes", {}, 0),
]


def walk(node: Node, path: str, field: str, params: dict) -> tuple[list, int]:
    """Every page of a route concatenated, and how many pages it took."""
    items, pages, query = [], 0, dict(params)
    while True:
        response = node.get(path, **query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page[field]) <= int(query.get("pagination.limit", 100))
        items += page[field]
        pages += 1
        if page["pagination"]["next_key"] is None:
            return items, pages
        query["pagination.key"] = page["pagination"]["next_key"]


@pytest.mark.parametrize(("path", "field", "filters", "count"), LISTS, ids=[f"{p}{f or ''}" for p, _, f, _ in LISTS])
def test_pages_walked_with_any_limit_either_way_are_the_whole_list(node, path, field, filters, count):
    whole = node.get(path, **filters, **{"pagination.limit": MAX_PAGE_LIMIT}).json()
    assert len(whole[field]) == count and whole["pagination"] == {"next_key": None}
    for limit in (1, 2, 5):
        forwards, pages = walk(node, path, field, {**filters, "pagination.limit": limit})
        assert forwards == whole[field] and pages == max(1, -(-count // limit))
        backwards, _ = walk(node, path, field, {**filters, "pagination.limit": limit, "pagination.reverse": "true"})
        assert backwards == whole[field][::-1]


def test_the_default_page_is_100_items_and_keys_are_opaque_state_keys(node):
    history = node.get("/v1/pricing/history", to_epoch=5, **{"pagination.limit": 2}).json()
    assert [r["epoch"] for r in history["epochs"]] == [0, 1]
    assert history["pagination"]["next_key"] == encode_page_key(f"{2:012d}")
    default = node.get("/v1/pricing/history").json()
    assert len(default["epochs"]) == 100 if default["pagination"]["next_key"] else len(default["epochs"]) <= 100


def test_a_proposal_reads_its_tally_and_its_deposits_and_votes_are_routes_of_their_own(node):
    proposal = node.get("/v1/governance/proposals/7").json()
    assert proposal["status"] == "voting_period" and proposal["tally"]["yes"] == 105
    assert "votes" not in proposal and "deposits" not in proposal
    deposits = node.get("/v1/governance/proposals/1/deposits").json()["deposits"]
    assert sorted(d["amount"] for d in deposits) == [100, 100, 100, 400]
    assert_error(node.get("/v1/governance/proposals/99/votes"), 404, "not_found")


BAD_PAGES = [  # (query parameters, error code, words of the message)
    ({"pagination.limit": "0"}, "invalid_parameter", "pagination.limit must be an integer from 1 to 1000"),
    ({"pagination.limit": str(MAX_PAGE_LIMIT + 1)}, "invalid_parameter", "from 1 to 1000"),
    ({"pagination.limit": "-1"}, "invalid_parameter", "pagination.limit must be an integer from 1 to 1000, got '-1'"),
    ({"pagination.limit": "9" * 30}, "invalid_parameter", "pagination.limit must be an integer from 1 to 1000"),
    ({"pagination.limit": "ten"}, "invalid_parameter", "pagination.limit must be an integer"),
    ({"pagination.key": "not a key!"}, "invalid_page_key", "pagination.key is not a next_key"),
    ({"pagination.key": "MDAw="}, "invalid_page_key", "pagination.key is not a next_key"),
    ({"pagination.key": "A" * 600}, "invalid_page_key", "pagination.key is not a next_key"),
    ({"pagination.reverse": "yes"}, "invalid_parameter", "pagination.reverse must be true or false"),
]


@pytest.mark.parametrize("path", ["/v1/validators", "/v1/governance/proposals", "/v1/governance/proposals/1/deposits"])
@pytest.mark.parametrize(("params", "code", "words"), BAD_PAGES)
def test_a_bad_page_key_or_limit_is_a_one_line_400_and_changes_nothing(node, path, params, code, words):
    sequence, mempool = node.sequence(node.key), node.mempool()
    assert words in assert_error(node.get(path, **params), 400, code)
    assert (node.sequence(node.key), node.mempool()) == (sequence, mempool)


def test_openapi_documents_the_pagination_of_every_list_route(node):
    document = node.get("/openapi.json").json()
    for path, field, _, _ in LISTS:
        operation = document["paths"][path.replace("/1/", "/{id}/").replace("/7/", "/{id}/")]["get"]
        names = {p["name"] for p in operation["parameters"]}
        assert {"pagination.limit", "pagination.key", "pagination.reverse"} <= names, path
        limit = next(p for p in operation["parameters"] if p["name"] == "pagination.limit")
        assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, MAX_PAGE_LIMIT)
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        if "$ref" in answer:  # a named schema: #/components/schemas/NAME
            answer = document["components"]["schemas"][answer["$ref"].rsplit("/", 1)[1]]
        assert {field, "pagination"} <= set(answer["required"]), path


# =============================================================================================
# the admin token and the JSON Content-Type
# =============================================================================================
PRICE = b'{"price": 5, "denom": "ngonka"}'
HEADER_CASES = [  # (listener, path, with the token, Content-Type (None: no header), status, code)
    ("admin", "/v1/admin/unit-of-compute-price-proposal", False, "application/json", 401, "unauthorized"),
    ("admin", "/v1/admin/unit-of-compute-price-proposal", False, None, 401, "unauthorized"),
    ("admin", "/v1/admin/unit-of-compute-price-proposal", True, None, 415, "unsupported_media_type"),
    ("admin", "/v1/admin/unit-of-compute-price-proposal", True, "text/plain", 415, "unsupported_media_type"),
    ("admin", "/v1/admin/models", True, None, 415, "unsupported_media_type"),
    ("admin", "/v1/admin/models", True, "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ("public", "/v1/txs", False, None, 415, "unsupported_media_type"),
    ("public", "/v1/txs", False, "text/plain", 415, "unsupported_media_type"),
]


@pytest.mark.parametrize(("listener", "path", "token", "content_type", "status", "code"), HEADER_CASES)
def test_a_request_without_the_token_or_the_json_content_type_is_refused_and_changes_nothing(
    node, listener, path, token, content_type, status, code
):
    sequence, mempool = node.sequence(node.key), node.mempool()
    body = PRICE
    if path == "/v1/admin/models":
        body = b'{"id": "no-content-type", "units_of_compute_per_token": 3}'
    if path == "/v1/txs":
        body = sign_tx(node.key, node.chain_id, sequence, [MsgSend(EXTRA[0].address, 1)])
    headers = {} if content_type is None else {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {node.token}"
    base = node.admin if listener == "admin" else node.public
    assert_error(requests.post(base + path, data=body, headers=headers, timeout=TIMEOUT), status, code)
    assert (node.sequence(node.key), node.mempool()) == (sequence, mempool)


def test_the_loopback_admin_listener_answers_401_to_a_read_without_the_token(node):
    assert node.admin.startswith("http://127.0.0.1:")
    path = node.admin + "/v1/admin/unit-of-compute-price-proposal"
    assert_error(requests.get(path, timeout=TIMEOUT), 401, "unauthorized")
    wrong = {"Authorization": "Bearer " + "0" * 64}
    assert_error(requests.get(path, headers=wrong, timeout=TIMEOUT), 401, "unauthorized")
    answer = requests.get(path, headers={"Authorization": f"Bearer {node.token}"}, timeout=TIMEOUT)
    assert_error(answer, 404, "never_voted")  # past the token: the operator has not voted


# =============================================================================================
# safe signing
# =============================================================================================
def test_uocd_tx_for_another_chain_id_fails_naming_both_and_sends_nothing(node, capsys):
    sequence, mempool = node.sequence(node.key), node.mempool()
    args = ["tx", "send", EXTRA[1].address, "3ngonka", "--home", str(node.home), "--chain-id", "uoc-elsewhere"]
    assert uocd(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("uocd: error: ")
    assert "'uoc-elsewhere'" in err and "'uoc-pagetest'" in err
    assert (node.sequence(node.key), node.mempool()) == (sequence, mempool)


def test_offline_signing_needs_no_node_and_makes_a_tx_the_node_commits(node, capsys, tmp_path):
    sequence = node.sequence(node.key)
    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens: --offline must not ask
    base = ["tx", "send", EXTRA[2].address, "4ngonka", "--home", str(node.home), "--node", unreachable]
    assert uocd([*base, "--offline"]) == 1
    assert "--offline needs --sequence" in capsys.readouterr().err
    assert uocd([*base, "--offline", "--sequence", str(sequence), "--chain-id", "uoc-pagetest"]) == 0
    raw = capsys.readouterr().out.strip().encode()
    signed = tmp_path / "tx.json"
    signed.write_bytes(raw)
    assert uocd([*base, "--offline", "--sequence", str(sequence), "--chain-id", "uoc-other"]) == 0
    (tmp_path / "other.json").write_text(capsys.readouterr().out)
    assert uocd(["tx", "broadcast", str(tmp_path / "other.json"), "--node", node.public]) == 1  # another chain's
    assert "'uoc-other'" in capsys.readouterr().err and node.mempool() == 0
    assert uocd(["tx", "broadcast", str(signed), "--node", node.public, "--output", "json"]) == 0
    committed = json.loads(capsys.readouterr().out)
    assert committed["status"] == "committed" and committed["code"] == "ok"
    assert node.sequence(node.key) == sequence + 1

    # the tx index answers without the block: drop the block's row behind the node's back
    with sqlite3.connect(node.home / "data" / "node.db", timeout=10) as db:
        db.execute("DELETE FROM blocks WHERE height = ?", (committed["height"],))
    found = node.get(f"/v1/txs/{committed['tx_hash']}")
    assert found.status_code == 200, found.text
    assert found.json()["tx"] == json.loads(raw) and found.json()["height"] == committed["height"]


HOSTILE_REQUESTS = [  # (method, path, query string, headers, body, status, code, words of the message)
    ("POST", "/v1/txs", "", {"Content-Encoding": "gzip"}, b"not gzip", 400, "invalid_body", "Content-Encoding 'gzip'"),
    ("POST", "/v1/txs/simulate", "", {"Content-Encoding": "deflate"}, b"no", 400, "invalid_body", "does not decode"),
    (
        "POST",
        "/v1/txs",
        "",
        {"Content-Encoding": "gzip"},
        b"\x1f\x8b\x08\x00",
        400,
        "invalid_body",
        "decodes to nothing",
    ),
    ("POST", "/v1/txs", "", {}, b'{"a": ' + b"9" * 5000 + b"}", 400, "invalid_json", "more than 4300 digits"),
    ("POST", "/v1/txs", "", {}, b"[" * 5000 + b"]" * 5000, 400, "invalid_json", "nests arrays or objects too deeply"),
    (
        "GET",
        "/v1/validators",
        "pagination.limit=1&pagination.limit=abc",
        {},
        b"",
        400,
        "invalid_parameter",
        "more than once",
    ),
    ("GET", "/v1/status", "height=1&height=2", {}, b"", 400, "invalid_parameter", "'height' is given more than once"),
    ("GET", "/v1/status", "height=-1", {}, b"", 400, "invalid_parameter", "from 1 to 2^63-1, got '-1'"),
    ("GET", "/v1/blocks/1000000000000000000", "", {}, b"", 404, "not_found", "no block at height"),
    ("GET", "/v1/blocks/9223372036854775808", "", {}, b"", 400, "invalid_height", "from 1 to 2^63-1"),
    ("CONNECT", "/v1/status", "", {}, b"", 404, "not_found", "no route CONNECT"),  # not a 415 for its tunnel
]


@pytest.mark.parametrize(("method", "path", "query", "headers", "body", "status", "code", "words"), HOSTILE_REQUESTS)
def test_a_hostile_request_is_a_one_line_4xx_naming_the_fault_and_changes_nothing(
    node, method, path, query, headers, body, status, code, words
):
    sequence, mempool = node.sequence(node.key), node.mempool()
    url = f"{node.public}{path}{'?' + query if query else ''}"
    response = requests.request(method, url, data=body or None, headers={**JSON, **headers}, timeout=TIMEOUT)
    assert words in assert_error(response, status, code)
    assert (node.sequence(node.key), node.mempool()) == (sequence, mempool)
    assert "Traceback" not in (node.home / "node.log").read_text()
