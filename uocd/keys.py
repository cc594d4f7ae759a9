"""`uocd keys add|list|show|delete|rename|export|import`: local signing keys in HOME/keys/NAME.json (from
a BIP-39 mnemonic), and the node home's validator key as NAME 'validator'."""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from mnemonic import Mnemonic

from chain.crypto import PrivateKey
from chain.encoding import describe_json_error
from node.errors import NodeError
from node.secret_files import VALIDATOR_KEY_FILE, load_key, render_key, write_secret

from .options import add_home_option, add_output_option, resolve_home
from .output import emit, render_rows

KEYS_DIR = "keys"
MNEMONIC = Mnemonic("english")
HARDENED = 0x80000000
MNEMONIC_PATH = (44, 118, 0, 0, 0)  # m/44'/118'/0'/0'/0' (Cosmos' coin type; SLIP-10 ed25519 hardens every step)
EXPORT_TYPE = "uoc-key-export-1"
SCRYPT = {"n": 2**15, "r": 8, "p": 1}  # what `keys export` writes: 32 MiB
SCRYPT_MAX_MEMORY = 128 * 2**20  # what `keys import` derives with at most (4 times what export uses)
KEY_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def add_keys_commands(commands: argparse._SubParsersAction) -> None:
    """uocd keys add|list|show|delete|rename|export|import."""
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
        description="Generate a new ed25519 key NAME in HOME/keys/NAME.json (mode 0600) from a new 24-word BIP-39 "
        "mnemonic, printed once: write it down, it recovers the key (SLIP-10 ed25519, path m/44'/118'/0'/0'/0'). "
        "With --recover, read a mnemonic (or a 32-byte seed as 64 hex digits) instead: typed without echo at a "
        "terminal, else one line of standard input. A key file is never overwritten.",
    )
    add.add_argument("name", metavar="NAME", help="a-z, 0-9, '_' and '-'")
    add.add_argument(
        "--recover", action="store_true", help="recover: read a BIP-39 mnemonic (or a hex seed) from standard input"
    )
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
    delete = sub.add_parser(
        "delete",
        help="delete a key",
        description="Delete key NAME from HOME/keys (the node's validator key is never deleted). Asks at a "
        "terminal; --yes skips the question (needed without a terminal).",
    )
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask")
    rename = sub.add_parser("rename", help="rename a key", description="Rename key OLD to NEW in HOME/keys.")
    rename.add_argument("name", metavar="OLD")
    rename.add_argument("new_name", metavar="NEW")
    export = sub.add_parser(
        "export",
        help="print a key encrypted with a passphrase",
        description="Print key NAME as an armored JSON document, its seed encrypted with a passphrase (scrypt, "
        "AES-256-GCM): typed twice without echo at a terminal, else one line of standard input. `uocd keys "
        "import` reads it back.",
    )
    export.add_argument("name", metavar="NAME")
    import_ = sub.add_parser(
        "import",
        help="import a key exported by uocd keys export",
        description="Import the key in FILE (written by `uocd keys export`) as NAME; the passphrase is typed "
        "without echo at a terminal, else one line of standard input. A wrong passphrase writes nothing.",
    )
    import_.add_argument("name", metavar="NAME")
    import_.add_argument("file", metavar="FILE", help="the exported key")
    for parser, func in (
        (delete, cmd_keys_delete),
        (rename, cmd_keys_rename),
        (export, cmd_keys_export),
        (import_, cmd_keys_import),
    ):
        add_home_option(parser)
        add_output_option(parser)
        parser.set_defaults(func=func)


def key_path(home: Path, name: str) -> Path:
    """The file of key NAME; NodeError if the name is not a plain name."""
    if not KEY_NAME.fullmatch(name):
        raise NodeError(
            f"a key name is 1-64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit; got {name!r}"
        )
    return home / KEYS_DIR / f"{name}.json"


def new_key_path(home: Path, name: str) -> Path:
    """The file a new key NAME goes to; NodeError if NAME is taken, or is `validator` (the name the node's own
    key is listed and used by: a key file of that name would be hidden by it)."""
    if name == "validator":
        raise NodeError("'validator' names the node's validator key (HOME/validator_key.json); choose another name")
    path = key_path(home, name)
    if os.path.lexists(path):
        what = "a symbolic link" if path.is_symlink() else f"the key {name!r}"
        raise NodeError(f"{path} already exists ({what}); refusing to overwrite a key file")
    return path


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


def read_secret_line(prompt: str) -> str:
    """A secret typed at a terminal without echo, else one line of standard input."""
    if sys.stdin.isatty():
        return getpass.getpass(prompt).strip()
    return sys.stdin.readline().strip()


def compute_mnemonic_key(words: str) -> PrivateKey:
    """The ed25519 key of a BIP-39 mnemonic: its seed (no passphrase), then SLIP-10 ed25519 along
    MNEMONIC_PATH (every step hardened); NodeError naming the rule if the phrase is not valid BIP-39."""
    words = " ".join(words.split()).lower()
    if not MNEMONIC.check(words):
        raise NodeError(
            "the mnemonic is not a valid BIP-39 phrase (12 to 24 words of the English list, with a valid checksum)"
        )
    digest = hmac.new(b"ed25519 seed", Mnemonic.to_seed(words), hashlib.sha512).digest()
    key, chain_code = digest[:32], digest[32:]
    for index in MNEMONIC_PATH:
        data = b"\x00" + key + (index | HARDENED).to_bytes(4, "big")
        digest = hmac.new(chain_code, data, hashlib.sha512).digest()
        key, chain_code = digest[:32], digest[32:]
    return PrivateKey(key)


def compute_recovered_key(text: str) -> PrivateKey:
    """The key of --recover's input: 64 hex digits (a seed) or a BIP-39 mnemonic."""
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return PrivateKey(bytes.fromhex(text))
    if len(text.split()) < 12:
        raise NodeError("--recover reads a BIP-39 mnemonic (12 to 24 words) or a 32-byte seed as 64 hex digits")
    return compute_mnemonic_key(text)


def cmd_keys_add(args: argparse.Namespace) -> int:
    """uocd keys add."""
    path = new_key_path(resolve_home(args), args.name)
    words = None
    if args.recover:
        key = compute_recovered_key(read_secret_line("mnemonic or seed (not echoed): "))
    else:
        words = MNEMONIC.generate(strength=256)
        key = compute_mnemonic_key(words)
    write_key(path, key)
    doc = key_doc(args.name, key, path)
    if words is not None:
        doc["mnemonic"] = words
    return emit(args, doc, render_added_key)


def render_added_key(doc: dict[str, Any]) -> str:
    """`keys add`'s text: the key, and the mnemonic once with its warning."""
    text = f"{doc['name']}: {doc['address']} (saved to {doc['path']}, mode 0600)"
    if "mnemonic" in doc:
        text += (
            "\n\n**Important** write this mnemonic phrase in a safe place. It is the only way to recover this key "
            f"if the file is lost; it is not shown again.\n\n{doc['mnemonic']}"
        )
    return text


def write_key(path: Path, key: PrivateKey) -> None:
    """A new key file (mode 0600, in a 0700 directory); never over an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    write_secret(path, render_key(key))


def get_own_key_file(home: Path, name: str) -> Path:
    """The file of key NAME in HOME/keys; NodeError if there is none (the validator key is not one)."""
    path = key_path(home, name)
    if not path.is_file():
        what = "the node's validator key is not managed by uocd keys" if name == "validator" else "no such key"
        raise NodeError(f"no key named {name!r} in {home / KEYS_DIR} ({what}; see uocd keys list --home {home})")
    return path


def cmd_keys_delete(args: argparse.Namespace) -> int:
    """uocd keys delete."""
    home = resolve_home(args)
    path = get_own_key_file(home, args.name)
    key = load_key(path)
    if not args.yes:
        if not sys.stdin.isatty():
            raise NodeError(f"deleting key {args.name!r} needs --yes without a terminal")
        answer = input(f"delete key {args.name} ({key.address})? it cannot be undone [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise NodeError("not deleted")
    path.unlink()
    return emit(args, {"deleted": args.name, "address": key.address}, lambda d: f"deleted {d['deleted']}")


def cmd_keys_rename(args: argparse.Namespace) -> int:
    """uocd keys rename."""
    home = resolve_home(args)
    old = get_own_key_file(home, args.name)
    new = new_key_path(home, args.new_name)
    os.link(old, new)  # fails rather than replace a file that appeared meanwhile
    old.unlink()
    return emit(args, key_doc(args.new_name, load_key(new), new), lambda d: f"{args.name} is now {d['name']}")


def cmd_keys_export(args: argparse.Namespace) -> int:
    """uocd keys export."""
    home = resolve_home(args)
    name, key = load_named_key(home, args.name)
    passphrase = read_secret_line("passphrase (not echoed): ")
    if sys.stdin.isatty() and read_secret_line("the passphrase again: ") != passphrase:
        raise NodeError("the two passphrases differ")
    if len(passphrase) < 8:
        raise NodeError("the passphrase must be at least 8 characters")
    print(json.dumps(encrypt_key(name, key, passphrase), indent=2))
    return 0


def cmd_keys_import(args: argparse.Namespace) -> int:
    """uocd keys import."""
    path = new_key_path(resolve_home(args), args.name)
    try:
        doc = json.loads(Path(args.file).read_bytes())
    except (ValueError, RecursionError) as exc:
        raise NodeError(f"{args.file} is not an exported key (not JSON: {describe_json_error(exc)})") from None
    key = decrypt_key(doc, read_secret_line("passphrase (not echoed): "), args.file)
    write_key(path, key)
    return emit(args, key_doc(args.name, key, path), lambda d: f"{d['name']}: {d['address']} (imported to {d['path']})")


def encrypt_key(name: str, key: PrivateKey, passphrase: str) -> dict[str, Any]:
    """The armored export of a key: its seed sealed with AES-256-GCM under scrypt(passphrase)."""
    salt, nonce = os.urandom(16), os.urandom(12)
    secret = Scrypt(salt=salt, length=32, **SCRYPT).derive(passphrase.encode())
    sealed = AESGCM(secret).encrypt(nonce, key.seed(), key.address.encode())
    return {
        "type": EXPORT_TYPE,
        "name": name,
        "address": key.address,
        "kdf": {"name": "scrypt", "salt": salt.hex(), **SCRYPT},
        "cipher": "aes-256-gcm",
        "nonce": nonce.hex(),
        "ciphertext": sealed.hex(),
    }


def is_bounded_scrypt(n: Any, r: Any, p: Any) -> bool:
    """True for scrypt parameters this command derives with: integers, n a power of 2 (≥ 2), r ≥ 1, 1 ≤ p ≤ 4,
    and at most SCRYPT_MAX_MEMORY of memory (128 × n × r bytes): an export file cannot make it take gigabytes."""
    if not all(type(v) is int for v in (n, r, p)) or n < 2 or n & (n - 1) or r < 1 or not 1 <= p <= 4:
        return False
    return bool(128 * n * r <= SCRYPT_MAX_MEMORY)


def decrypt_key(doc: Any, passphrase: str, where: str) -> PrivateKey:
    """The key of an armored export; NodeError on another kind of file or a wrong passphrase."""
    try:
        if doc["type"] != EXPORT_TYPE or doc["kdf"]["name"] != "scrypt" or doc["cipher"] != "aes-256-gcm":
            raise ValueError("not a uoc key export")
        kdf = {k: doc["kdf"][k] for k in SCRYPT}
        if not is_bounded_scrypt(**kdf):
            raise ValueError(
                "scrypt parameters out of bounds: n a power of 2, r and p ≥ 1, p ≤ 4, at most "
                f"{SCRYPT_MAX_MEMORY // 2**20} MiB (128 × n × r bytes)"
            )
        secret = Scrypt(salt=bytes.fromhex(doc["kdf"]["salt"]), length=32, **kdf).derive(passphrase.encode())
        nonce, sealed, address = bytes.fromhex(doc["nonce"]), bytes.fromhex(doc["ciphertext"]), doc["address"]
    except (KeyError, TypeError, ValueError) as exc:
        raise NodeError(f"{where} is not a key exported by uocd keys export ({exc})") from None
    try:
        key = PrivateKey(AESGCM(secret).decrypt(nonce, sealed, str(address).encode()))
    except InvalidTag:
        raise NodeError(f"wrong passphrase for {where} (or the file was altered)") from None
    if key.address != address:
        raise NodeError(f"{where}: the address does not match the key")
    return key


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
