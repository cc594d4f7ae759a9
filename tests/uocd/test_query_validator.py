"""`uocd query validator ADDRESS` shows a validator's price-vote misses, last vote and its distance
from the price, as `GET /v1/validators/{address}` serves them (issue 17, item 2)."""

from __future__ import annotations

import json

from chain.tx import MsgSubmitPriceProposal
from node.client import Client
from tests.helpers import ADDR, make_app, make_genesis, run_block, signed
from uocd.main import main


def served_validator() -> dict:
    """c's view after it voted 150 in epoch 0 and missed epochs 1 and 2 (miss_window 4, counting only)."""
    app = make_app(make_genesis({"a": 50, "b": 30, "c": 20}, epoch_length=2, miss_window=4))
    run_block(app, [signed("c", 0, MsgSubmitPriceProposal.of(150))])
    for _ in range(5):
        run_block(app)
    return app.query("validator/" + ADDR["c"])


def test_uocd_query_validator_prints_misses_last_vote_and_distance(monkeypatch, capsys):
    doc = served_validator()
    assert (doc["misses"], doc["window_epochs"], doc["last_vote"], doc["vote_distance_bps"]) == (2, 3, 150, 5000)
    asked = []

    def get(self: Client, path: str, **params: object) -> dict:
        asked.append(path)
        return doc

    monkeypatch.setattr(Client, "get", get)
    assert main(["query", "validator", ADDR["c"], "--node", "http://127.0.0.1:1"]) == 0
    lines = {line.split(":")[0].strip(): line.split(":", 1)[1].strip() for line in capsys.readouterr().out.splitlines()}
    assert (lines["misses"], lines["window_epochs"], lines["last_vote"], lines["vote_distance_bps"]) == (
        "2",
        "3",
        "150",
        "5000",
    )
    assert main(["query", "validator", ADDR["c"], "--node", "http://127.0.0.1:1", "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == doc
    assert asked == [f"/v1/validators/{ADDR['c']}"] * 2
