"""`uocd keys add|list|show`: local signing keys in HOME/keys/NAME.json, and the node home's validator
key as NAME 'validator'."""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from pathlib import Path
from typing import Any

from chain.crypto import PrivateKey
from chain.errors import ChainError
from node.config import VALIDATOR_KEY_FILE, load_key, render_key, write_secret
from node.errors import NodeError

from .options import add_home_option, add_output_option, resolve_home
from .output import emit, render_rows

KEYS_DIR = "keys"
KEY_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def add_keys_commands(commands: argparse._SubParsersAction) -> None:
    """uocd keys add|list|show."""
    keys = commands.add_parser(
        "keys",
        help="local signing keys",
        description="Local signing keys, kept in HOME/keys/NAME.json (mode 0600). In a node home, the "
        "validator key (validator_key.json) is listed and used as NAME 'validator'.",
    )
    sub = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    add = sub.add_parser(
        "add",
        help="create a key (or import one with --recover)",
        description="Generate a new ed25519 key NAME in HOME/keys/NAME.json (mode 0600) and print its address. "
        "With --recover, read its 32-byte seed as 64 hex digits instead: typed without echo at a terminal, "
        "else one line of standard input. A key file is never overwritten.",
    )
    add.add_argument("name", metavar="NAME", help="a-z, 0-9, '_' and '-'")
    add.add_argument("--recover", action="store_true", help="import: read the hex seed from standard input")
    add_home_option(add)
    add_output_option(add)
    add.set_defaults(func=cmd_keys_add)
    listing = sub.add_parser("list", help="list the keys", description="List the keys of the home: name and address.")
    add_home_option(listing)
    add_output_option(listing)
    listing.set_defaults(func=cmd_keys_list)
    show = sub.add_parser("show", help="show one key", description="Print a key's name, address and public key.")
    show.add_argument("name", metavar="NAME")
    add_home_option(show)
    add_output_option(show)
    show.set_defaults(func=cmd_keys_show)


def key_path(home: Path, name: str) -> Path:
    """The file of key NAME; NodeError if the name is not a plain name."""
    if not KEY_NAME.fullmatch(name):
        raise NodeError(
            f"a key name is 1-64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit; got {name!r}"
        )
    return home / KEYS_DIR / f"{name}.json"


def list_keys(home: Path) -> list[tuple[str, Path]]:
    """(name, file) of every key of the home, the node's validator key first."""
    found = [("validator", home / VALIDATOR_KEY_FILE)] if (home / VALIDATOR_KEY_FILE).is_file() else []
    if (home / KEYS_DIR).is_dir():
        found += sorted((p.stem, p) for p in (home / KEYS_DIR).glob("*.json"))
    return found


def load_named_key(home: Path, name: str | None) -> tuple[str, PrivateKey]:
    """(name, key) for --from NAME; without a name, the node home's validator key."""
    if name is None:
        if (home / VALIDATOR_KEY_FILE).is_file():
            return "validator", load_key(home / VALIDATOR_KEY_FILE)
        raise NodeError(f"--from NAME is needed: {home} is not a node home (see uocd keys list --home {home})")
    path = key_path(home, name)
    if path.is_file():
        return name, load_key(path)
    if name == "validator" and (home / VALIDATOR_KEY_FILE).is_file():
        return name, load_key(home / VALIDATOR_KEY_FILE)
    raise NodeError(f"no key named {name!r} in {home} (see uocd keys list --home {home})")


def key_doc(name: str, key: PrivateKey, path: Path) -> dict[str, Any]:
    """A key as shown: name, address, public key, file."""
    return {"name": name, "address": key.address, "pubkey": key.pubkey.hex(), "path": str(path)}


def read_seed() -> str:
    """The hex seed of --recover: typed at a terminal without echo, else one line of standard input."""
    if sys.stdin.isatty():
        return getpass.getpass("seed (64 hex digits, not echoed): ").strip()
    return sys.stdin.readline().strip()


def cmd_keys_add(args: argparse.Namespace) -> int:
    """uocd keys add."""
    home = resolve_home(args)
    path = key_path(home, args.name)
    if path.exists():
        raise NodeError(f"a key named {args.name!r} already exists in {path}")
    if args.recover:
        text = read_seed()
        try:
            key = PrivateKey(bytes.fromhex(text))
        except (ValueError, ChainError):
            raise NodeError("--recover reads a 32-byte seed as 64 hex digits from standard input") from None
    else:
        key = PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    write_secret(path, render_key(key))
    return emit(
        args, key_doc(args.name, key, path), lambda d: f"{d['name']}: {d['address']} (saved to {d['path']}, mode 0600)"
    )


def cmd_keys_list(args: argparse.Namespace) -> int:
    """uocd keys list."""
    home = resolve_home(args)
    docs = [key_doc(name, load_key(path), path) for name, path in list_keys(home)]
    return emit(
        args,
        {"keys": docs},
        lambda d: (
            render_rows([{"name": k["name"], "address": k["address"]} for k in d["keys"]])
            if d["keys"]
            else f"no keys in {home} (add one: uocd keys add NAME --home {home})"
        ),
    )


def cmd_keys_show(args: argparse.Namespace) -> int:
    """uocd keys show."""
    home = resolve_home(args)
    name, key = load_named_key(home, args.name)
    path = dict(list_keys(home)).get(name, home)
    return emit(args, key_doc(name, key, path))
