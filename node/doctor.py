"""`uocd doctor`: check a node home without changing it, and say what is wrong and how to fix it.

    findings = check_home(Path("~/.uocd"))   # [Finding(check, problem, fix, note)], in the order below

The checks: config.toml parses; genesis.json is one; every key and token file (node key, its TLS
key, validator key, admin token, HOME/keys/NAME.json) is a regular owner-only file that loads (the
TLS pair bound to the node key); the sign state reads; and the store (if the node ever started)
passes `PRAGMA quick_check`, holds this genesis's chain and hashes to its stored app hash. The store
is checked under the home's lock, so never while a node runs it (that is said, not a problem).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain.errors import ChainError, StoreError

from .config import (
    ADMIN_TOKEN_FILE,
    CONFIG_FILE,
    DB_FILE,
    GENESIS_FILE,
    NODE_KEY_FILE,
    parse_config,
    read_admin_token,
    read_genesis,
)
from .errors import ConfigError, NodeError
from .feeder import FEEDER_FILE, load_feeder_file
from .ledger import compute_store_fix, lock_home, open_checked_store
from .secret_files import VALIDATOR_KEY_FILE, is_private_mode, load_key
from .sign_state_file import SIGN_STATE_FILE, load_sign_state
from .tls import TLS_KEY_FILE, load_identity


@dataclass(frozen=True)
class Finding:
    """One check: what was checked, what is wrong with it and how to fix it (None when fine), and a note."""

    check: str
    problem: str | None = None
    fix: str | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "ok": self.problem is None,
            "problem": self.problem,
            "fix": self.fix,
            "note": self.note,
        }


def compute_secret_fix(path: Path, home: Path) -> str:
    """How to fix a key or token file that does not load: the chmod, the link to replace, or new keys."""
    if path.is_symlink():
        return f"replace the link {path} with the file it points to"
    if os.path.exists(path) and not is_private_mode(path.stat().st_mode):
        return f"chmod 600 {path}"
    return f"restore it from a backup, or make new keys with uocd init --home {home} --overwrite"


def check_file(name: str, path: Path, home: Path, load: Callable[[Path], object], *, required: bool) -> Finding:
    """Load `path` with `load`: fine, absent (a problem if `required`), or the loader's error and its fix."""
    if not os.path.lexists(path):
        if required:
            return Finding(name, f"{path} is missing", f"uocd init --home {home} (it keeps the keys it finds)")
        return Finding(name, note="absent")
    try:
        load(path)
    except (ChainError, NodeError, OSError, ValueError) as exc:
        return Finding(name, str(exc), compute_secret_fix(path, home))
    return Finding(name)


def load_admin_token(path: Path) -> str:
    """The admin token; ConfigError if the file is empty (start refuses a node without one)."""
    token = read_admin_token(path)
    if token is None:
        raise ConfigError(f"{path} is empty: the admin API requires a token")
    return token


def check_keys(home: Path) -> list[Finding]:
    """The node key and its TLS key, the validator key and its sign state, the admin token, HOME/keys/*.json."""
    node_key = check_file(NODE_KEY_FILE, home / NODE_KEY_FILE, home, load_key, required=True)
    findings = [node_key]
    if node_key.problem is None:
        tls = check_file(
            TLS_KEY_FILE,
            home / TLS_KEY_FILE,
            home,
            lambda p: load_identity(home, load_key(home / NODE_KEY_FILE)),
            required=False,
        )
        findings.append(tls)
    findings += [
        check_file(VALIDATOR_KEY_FILE, home / VALIDATOR_KEY_FILE, home, load_key, required=False),
        check_sign_state(home),
        check_feeder_file(home),
        check_file(ADMIN_TOKEN_FILE, home / ADMIN_TOKEN_FILE, home, load_admin_token, required=True),
    ]
    findings += [
        check_file(f"keys/{path.name}", path, home, load_key, required=True)
        for path in sorted((home / "keys").glob("*.json"))
    ]
    return findings


def check_sign_state(home: Path) -> Finding:
    """The validator's sign state: absent is fine (the node then waits before signing), unreadable is not."""
    found = check_file(SIGN_STATE_FILE, home / SIGN_STATE_FILE, home, load_sign_state, required=False)
    if found.problem is None:
        return found
    fix = "restore it from a backup, or delete it (the node then signs nothing for double_sign_check_height heights)"
    return Finding(SIGN_STATE_FILE, found.problem, fix)


def check_feeder_file(home: Path) -> Finding:
    """The price feeder's file: absent is fine (no price posted yet), unreadable is not (the node would not start)."""
    found = check_file(FEEDER_FILE, home / FEEDER_FILE, home, load_feeder_file, required=False)
    path = home / FEEDER_FILE
    if found.problem is None or path.is_symlink() or not is_private_mode(path.stat().st_mode):
        return found  # fine, or the link or chmod fix of any secret file
    fix = "delete it and post the price again (a commit made this epoch or the last then goes unrevealed: a miss)"
    return Finding(FEEDER_FILE, found.problem, fix)


def check_store(home: Path, chain_id: str | None) -> list[Finding]:
    """The store: absent (never started), in use (not checked), else its integrity, chain and app hash."""
    if not (home / DB_FILE).exists():
        return [Finding(DB_FILE, note="absent: the node has not started yet")]
    try:
        with lock_home(home):
            store, app = open_checked_store(home)
            try:
                held = app.query("status")["chain_id"] if app.height >= 0 else chain_id
                height = app.height
            finally:
                store.close()
    except NodeError as exc:  # the lock: a node runs on this home
        return [Finding(DB_FILE, note=f"not checked: {exc}; stop the node to check its store")]
    except StoreError as exc:
        return [Finding(DB_FILE, str(exc), compute_store_fix(home))]
    if chain_id is not None and held != chain_id:
        problem = f"{home / DB_FILE} holds chain {held!r}, but {GENESIS_FILE} is of {chain_id!r}"
        return [Finding(DB_FILE, problem, f"use the genesis of chain {held!r}, or {compute_store_fix(home)}")]
    return [Finding(DB_FILE, note=f"quick_check ok; app hash matches the state at height {height}")]


def check_home(home: Path) -> list[Finding]:
    """Every check of `home`, in order: config, genesis, keys and tokens, store. Changes nothing."""
    home = Path(home).expanduser()
    config = check_file(CONFIG_FILE, home / CONFIG_FILE, home, lambda p: parse_config(p.read_text()), required=True)
    if config.problem is not None and not (home / CONFIG_FILE).exists():
        config = Finding(
            CONFIG_FILE, f"{home} is not a node home ({CONFIG_FILE} is missing)", f"uocd init --home {home}"
        )
    elif config.problem is not None:
        config = Finding(
            CONFIG_FILE, config.problem, f"edit {home / CONFIG_FILE} (uocd init writes every key with a comment)"
        )
    try:
        chain_id: str | None = read_genesis(home / GENESIS_FILE)["chain_id"]  # read once, for both checks
        genesis = Finding(GENESIS_FILE)
    except (NodeError, OSError) as exc:
        chain_id, genesis = None, Finding(GENESIS_FILE, str(exc), f"copy the network's {GENESIS_FILE} into {home}")
    return [config, genesis, *check_keys(home), *check_store(home, chain_id)]
