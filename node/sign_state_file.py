"""The validator's sign state in its own file beside the validator key (`HOME/validator_state.json`), as CometBFT
keeps `priv_validator_state.json`: it must outlive the data directory, so a validator whose store is wiped and
resynced still knows what it signed.

Every write is atomic and durable before it returns (`node.secret_files.replace_secret`: a new 0600 file in
the same directory, fdatasync, rename over the old file, fsync of the directory): the node writes it on every
`Persist` action, so a signed message never leaves the node before the state that records it is on disk. A
missing file at start means the state is lost; the node then watches `double_sign_check_height` heights before
it signs (`node.consensus.Consensus`). An unreadable file is a `ConfigError`: the node refuses to start rather
than sign from a state it cannot read.
"""

from __future__ import annotations

import json
from pathlib import Path

from chain.encoding import canonical_json

from .consensus import SignState
from .errors import ConfigError, InvalidMessage
from .secret_files import replace_secret

SIGN_STATE_FILE = "validator_state.json"


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
    """Write the sign state atomically and durably (`replace_secret`)."""
    replace_secret(path, canonical_json(state.to_json()).encode())
