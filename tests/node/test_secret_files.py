"""Key and token files: created 0600 with O_EXCL, never through a link; read only when owner-only."""

from __future__ import annotations

import os
import stat

import pytest

from node.errors import ConfigError
from node.secret_files import read_secret, replace_secret, write_secret


def mode_of(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_secret_is_created_0600_even_under_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        write_secret(tmp_path / "k", "seed")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "k") == 0o600 and (tmp_path / "k").read_text() == "seed"


def test_an_existing_secret_is_never_overwritten(tmp_path):
    (tmp_path / "k").write_text("old")
    with pytest.raises(ConfigError, match="already exists .a file.; refusing to overwrite"):
        write_secret(tmp_path / "k", "new")
    assert (tmp_path / "k").read_text() == "old"


def test_a_symlink_in_place_of_a_secret_is_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    (tmp_path / "k").symlink_to(target)  # dangling: a plain open(O_CREAT) would create `target`
    with pytest.raises(ConfigError, match="a symbolic link"):
        write_secret(tmp_path / "k", "seed")
    assert not target.exists()


def test_replace_secret_rewrites_a_file_with_mode_0600(tmp_path):
    (tmp_path / "devnet.json").write_text("{}")
    os.chmod(tmp_path / "devnet.json", 0o644)
    replace_secret(tmp_path / "devnet.json", '{"token": "t"}')
    assert mode_of(tmp_path / "devnet.json") == 0o600 and "token" in (tmp_path / "devnet.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["devnet.json"]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_reading_a_secret_others_may_read_names_the_file_and_the_chmod(tmp_path, mode):
    path = tmp_path / "k"
    path.write_text("seed")
    os.chmod(path, mode)
    with pytest.raises(ConfigError) as info:
        read_secret(path)
    assert str(info.value) == (
        f"{path}: permissions {mode:04o} are too open (only its owner may read a key or token); run: chmod 600 {path}"
    )


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_an_owner_only_secret_reads(tmp_path, mode):
    path = tmp_path / "k"
    path.write_text("seed")
    os.chmod(path, mode)
    assert read_secret(path) == b"seed"


def test_reading_a_secret_through_a_symlink_is_refused(tmp_path):
    real = tmp_path / "real"
    write_secret(real, "seed")
    (tmp_path / "k").symlink_to(real)
    with pytest.raises(ConfigError, match=f"^{tmp_path / 'k'} is a symbolic link"):
        read_secret(tmp_path / "k")
