"""`uocd receipt sign`: a requester's receipt from flags, signed for the chain it names, in the shape
`POST /v1/admin/usage` takes; a bad field is one line and exit 1, and nothing is written."""

from __future__ import annotations

import base64
import json

from chain.crypto import verify_signature
from chain.tx import Receipt, compute_receipt_sign_bytes
from node.secret_files import render_key, write_secret
from tests.helpers import ADDR, KEYS
from uocd.main import main

FLAGS = ["--request-id", "job-1", "--provider", ADDR["e"], "--model", "Qwen/Qwen2.5-7B", "--tokens", "1200,350"]
FLAGS += ["--price-ceiling", "2icoin", "--expires-at", "900", "--workforce", "research", "--worker", "agent-7"]


def key_home(tmp_path):
    (tmp_path / "keys").mkdir(mode=0o700)
    write_secret(tmp_path / "keys" / "buyer.json", render_key(KEYS["d"]))
    return ["--home", str(tmp_path), "--from", "buyer", "--chain-id", "uoc-test"]


def test_a_signed_receipt_is_the_admin_usage_body_and_verifies_against_the_requester(tmp_path, capsys):
    assert main(["receipt", "sign", *key_home(tmp_path), *FLAGS, "-o", "json"]) == 0
    body = json.loads(capsys.readouterr().out)
    receipt = Receipt.parse(body["receipt"], "receipt")
    assert (receipt.requester, receipt.price_ceiling, receipt.tokens) == (ADDR["d"], 2 * 10**9, (1200, 350))
    assert (receipt.workforce, receipt.worker, receipt.role) == ("research", "agent-7", None)
    signature = base64.b64decode(body["requester_signature"])
    assert verify_signature(KEYS["d"].pubkey, signature, compute_receipt_sign_bytes("uoc-test", receipt))
    assert not verify_signature(KEYS["d"].pubkey, signature, compute_receipt_sign_bytes("uoc-other", receipt))


def test_with_out_the_receipt_goes_to_the_file_and_the_signature_to_stdout(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["receipt", "sign", *key_home(tmp_path), *FLAGS, "--out", str(out)]) == 0
    receipt = Receipt.parse(json.loads(out.read_text()), "receipt")
    signature = base64.b64decode(capsys.readouterr().out.strip())
    assert verify_signature(KEYS["d"].pubkey, signature, compute_receipt_sign_bytes("uoc-test", receipt))


def test_a_bad_field_is_one_line_and_exit_1_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "r.json"
    home = key_home(tmp_path)
    for bad in ("--tokens=-1,5", "--role=ops\x07", "--worker=" + "k" * 65, "--tokens=12", "--request-id=a|b"):
        assert main(["receipt", "sign", *home, *FLAGS, bad, "--out", str(out)]) == 1, bad
        error = capsys.readouterr().err
        assert error.startswith("uocd: error: invalid receipt:") and error.count("\n") == 1, error
        assert not out.exists()
