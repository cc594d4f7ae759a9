"""uocd's commit–reveal commands, signed offline: `tx price-commit HASH`, `tx price-reveal SALT PRICE
[DENOM]` and `tx param-change NAME=VALUE[,…]` print the transaction the chain takes; bad input is one
error line naming the field and exit code 1."""

from __future__ import annotations

import pytest

from chain.tx import compute_price_commit_hash, decode_tx
from uocd.main import main

SALT = "5a" * 32


@pytest.fixture
def home(tmp_path):
    assert main(["keys", "add", "op", "--home", str(tmp_path)]) == 0
    return str(tmp_path)


def offline(home: str, *words: str) -> list[str]:
    return ["tx", *words, "--home", home, "--from", "op", "--offline", "--sequence", "0", "--chain-id", "c"]


def signed_messages(capsys) -> list[dict]:
    raw = capsys.readouterr().out.strip().encode()
    return [m.to_json() for m in decode_tx(raw).messages]


def test_commit_reveal_and_param_change_commands_sign_the_messages(home, capsys):
    capsys.readouterr()
    digest = compute_price_commit_hash(SALT, 5, "icoin", "uoc1" + "q" * 38)
    assert main(offline(home, "price-commit", digest)) == 0
    assert signed_messages(capsys) == [{"@type": "MsgCommitPrice", "hash": digest}]
    assert main(offline(home, "price-reveal", SALT, "5", "icoin")) == 0
    assert signed_messages(capsys) == [{"@type": "MsgRevealPrice", "salt": SALT, "price": 5, "denom": "icoin"}]
    assert main(offline(home, "param-change", "vote_mode=commit_reveal,miss_window=4", "--deposit", "10")) == 0
    (proposal,) = signed_messages(capsys)
    assert proposal["content"] == {"@type": "ParamChange", "changes": {"miss_window": 4, "vote_mode": "commit_reveal"}}


@pytest.mark.parametrize(
    ("words", "named"),
    [
        (("price-commit", "abc"), "hash must be a sha256 price commitment"),
        (("price-commit", "AB" * 32), "lower-case hex"),
        (("price-reveal", "ab" * 31, "5"), "salt must be a 32-byte salt"),
        (("param-change", "epoch_length=5", "--deposit", "10"), "not a param governance may change"),
        (("param-change", "vote_mode=secret", "--deposit", "10"), "must be one of open, commit_reveal"),
        (("param-change", "vote_mode", "--deposit", "10"), "name=value"),
    ],
)
def test_bad_commit_reveal_input_is_one_error_line_and_exit_1(home, capsys, words, named):
    capsys.readouterr()
    assert main(offline(home, *words)) == 1
    out, err = capsys.readouterr()
    assert out == "" and named in err and len(err.strip().splitlines()) == 1
