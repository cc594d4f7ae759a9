"""The validator's sign state in its own file beside the validator key (`HOME/validator_state.json`),
as CometBFT keeps `priv_validator_state.json`: it must outlive the data directory, so a validator
whose store is wiped and resynced still knows what it signed.

Every write is atomic and durable before it returns (a temporary file in the same directory, fdatasync,
rename over the old file, fsync of the directory): the node writes it on every `Persist` action, so
a signed message never leaves the node before the state that records it is on disk. A missing file at
start means the state is lost; the node then watches `double_sign_check_height` heights before it signs
(`node.consensus.Consensus`). An unreadable file is a `ConfigError`: the node refuses to start rather
than sign from a state it cannot read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from chain.encoding import canonical_json

from .consensus import SignState
from .errors import ConfigError, InvalidMessage

SIGN_STATE_FILE = "validator_state.json"
SECRET_MODE = 0o600


def load_sign_state(path: Path) -> SignState | None:
    """The sign state saved at `path`, None if the file is missing; ConfigError if it is not one."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return SignState.from_json(json.loads(text))
    except (ValueError, InvalidMessage) as exc:
        raise ConfigError(f"{path} is not a sign state file: {exc}") from None


def save_sign_state(path: Path, state: SignState) -> None:
    """Write the sign state atomically and durably (`write_durably`)."""
    write_durably(path, canonical_json(state.to_json()).encode())


def write_durably(path: Path, data: bytes) -> None:
    """Replace the file at `path` with `data`, atomically and durably: a temporary file (mode 0600, never
    through a link), every byte written, fdatasync, rename over `path`, fsync of the directory."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover (or a planted link) goes: the new file is made 0600, never through a link
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, SECRET_MODE)
    try:
        view = memoryview(data)
        while view:  # a write may take fewer bytes than it was given
            view = view[os.write(fd, view) :]
        os.fdatasync(fd)  # the data; the rename and the directory fsync make it the file
    finally:
        os.close(fd)
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
