"""The sign state file beside the validator key: written atomically and durably, read back, refused
when unreadable, created by `uocd init`, and outside the data directory a wipe removes."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from chain.crypto import PrivateKey
from node.blocks import Block, Header, compute_txs_hash
from node.config import init_home
from node.consensus import SignState
from node.errors import ConfigError
from node.sign_state_file import SIGN_STATE_FILE, load_sign_state, save_sign_state


def test_the_sign_state_round_trips_through_its_file_and_replaces_it_whole(tmp_path: Path):
    path = tmp_path / SIGN_STATE_FILE
    assert load_sign_state(path) is None
    first = SignState().with_signed(3, 1, "prevote", None)
    save_sign_state(path, first)
    second = first.with_signed(3, 1, "precommit", "ab" * 32)
    save_sign_state(path, second)
    assert load_sign_state(path) == second
    assert sorted(p.name for p in tmp_path.iterdir()) == [SIGN_STATE_FILE]  # no temporary file left
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_a_link_or_a_wide_leftover_in_place_of_the_temporary_file_is_never_written_through(tmp_path: Path):
    path = tmp_path / SIGN_STATE_FILE
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / f".{SIGN_STATE_FILE}.tmp").symlink_to(target)
    save_sign_state(path, SignState().with_signed(3, 1, "prevote", None))
    assert target.read_text() == "keep" and not path.is_symlink()
    leftover = tmp_path / f".{SIGN_STATE_FILE}.tmp"
    leftover.write_text("old")
    leftover.chmod(0o644)
    save_sign_state(path, SignState().with_signed(3, 1, "precommit", None))
    assert os.stat(path).st_mode & 0o777 == 0o600 and load_sign_state(path) is not None


@pytest.mark.parametrize("text", ["", "{", "[]", '{"height": "3"}', '{"height": 1, "signed": [{"step": "x"}]}'])
def test_an_unreadable_sign_state_file_is_a_one_line_config_error(tmp_path: Path, text: str):
    path = tmp_path / SIGN_STATE_FILE
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_sign_state(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_init_writes_an_empty_sign_state_beside_the_validator_key_outside_the_data_directory(tmp_path: Path):
    home = init_home(tmp_path / "home", "n0")
    assert home.sign_state_path == home.path / SIGN_STATE_FILE
    assert (home.path / "validator_key.json").is_file() and home.db_path.parent != home.sign_state_path.parent
    assert load_sign_state(home.sign_state_path) == SignState()


PROPOSER = PrivateKey.from_name("proposer").address


def _block(height: int, tx: bytes) -> Block:
    header = Header(
        "uoc-test", height, 5000, "ab" * 32, "ab" * 32, compute_txs_hash((tx,)), "cd" * 32, "ab" * 32, PROPOSER
    )
    return Block(header, (tx,), None)


def test_a_valid_block_that_is_the_locked_block_is_written_once_and_read_back_as_both(tmp_path: Path):
    path = tmp_path / SIGN_STATE_FILE
    block = _block(4, b"\x5a" * 1000)
    state = replace(SignState(), height=4, locked_round=1, locked_block=block, valid_round=1, valid_block=block)
    save_sign_state(path, state)
    assert path.read_text().count("5a" * 1000) == 1
    assert load_sign_state(path) == state


def test_a_valid_block_other_than_the_locked_block_is_written_beside_it(tmp_path: Path):
    path = tmp_path / SIGN_STATE_FILE
    locked, valid = _block(4, b"\x5a" * 100), _block(4, b"\x5b" * 100)
    state = replace(SignState(), height=4, locked_round=1, locked_block=locked, valid_round=2, valid_block=valid)
    save_sign_state(path, state)
    assert load_sign_state(path) == state


def test_a_sign_state_file_of_an_earlier_version_with_the_block_twice_still_loads(tmp_path: Path):
    path = tmp_path / SIGN_STATE_FILE
    block = _block(4, b"\x5a" * 100)
    state = replace(SignState(), height=4, locked_round=1, locked_block=block, valid_round=1, valid_block=block)
    earlier = {**state.to_json(), "valid_block": block.to_json()}
    del earlier["valid_block_is_locked"]
    path.write_text(json.dumps(earlier))
    assert load_sign_state(path) == state


@pytest.mark.parametrize("flag", ["yes", 1])
def test_valid_block_is_locked_must_be_a_boolean(tmp_path: Path, flag):
    path = tmp_path / SIGN_STATE_FILE
    path.write_text(json.dumps({**SignState().to_json(), "valid_block_is_locked": flag}))
    with pytest.raises(ConfigError):
        load_sign_state(path)


def test_valid_block_is_locked_without_a_locked_block_is_refused(tmp_path: Path):
    path = tmp_path / SIGN_STATE_FILE
    path.write_text(json.dumps({**SignState().to_json(), "valid_block_is_locked": True}))
    with pytest.raises(ConfigError):
        load_sign_state(path)
