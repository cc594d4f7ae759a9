"""The sign state file beside the validator key: written atomically and durably, read back, refused
when unreadable, created by `uocd init`, and outside the data directory a wipe removes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
    (tmp_path / f"{SIGN_STATE_FILE}.tmp").symlink_to(target)
    save_sign_state(path, SignState().with_signed(3, 1, "prevote", None))
    assert target.read_text() == "keep" and not path.is_symlink()
    leftover = tmp_path / f"{SIGN_STATE_FILE}.tmp"
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
