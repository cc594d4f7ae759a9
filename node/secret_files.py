"""Files that hold a key or a token: created owner-only, never overwritten, never read through a link.

A secret file is created with `O_CREAT | O_EXCL | O_NOFOLLOW` and mode 0600, so there is no window with a
wider mode, an existing file (or a symbolic link planted in its place) is never written through, and nothing
is truncated. A file rewritten on purpose (devnet.json, the price feeder's salts) goes through a new 0600 file
renamed over the old one (as is the validator's sign state, before every vote). Every write is durable before
it returns (fdatasync of the file, and fsync of the directory after a rename). Reading a secret refuses a
symbolic link and, as ssh does, a file that others than its owner may read or write, naming the file and the
`chmod 600` that fixes it. A key file (`render_key`, `load_key`) is one of them.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

from chain.crypto import PrivateKey
from chain.errors import ChainError

from .errors import ConfigError

SECRET_MODE = 0o600

VALIDATOR_KEY_FILE = "validator_key.json"


def create_file(path: Path, data: str | bytes, mode: int) -> None:
    """Create `path` with `data` and `mode` from creation; ConfigError if anything (a link included) is there."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        what = "a symbolic link" if path.is_symlink() else "a file"
        raise ConfigError(f"{path} already exists ({what}); refusing to overwrite a key or token file") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fdatasync(f.fileno())  # a key, token or salt on disk before anything that depends on it is sent


def write_secret(path: Path, data: str | bytes) -> None:
    """Create `path` with `data`, mode 0600 from creation (see create_file)."""
    create_file(path, data, SECRET_MODE)


def replace_secret(path: Path, data: str | bytes) -> None:
    """Write `path` anew, mode 0600: a new file beside it, renamed over the old one (never written through)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    write_secret(tmp, data)
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself, so a crash cannot bring the old file back
    finally:
        os.close(directory)


def is_private_mode(mode: int) -> bool:
    """Whether a file mode gives no access to the group or others (0600, 0400)."""
    return stat.S_IMODE(mode) & 0o077 == 0


def read_secret(path: Path) -> bytes:
    """The bytes of a secret file; FileNotFoundError if missing, ConfigError if a link or not owner-only."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(
                f"{path} is a symbolic link; a key or token file must be a regular file "
                "(move the file it points to here)"
            ) from None
        raise
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not is_private_mode(mode):
            raise ConfigError(
                f"{path}: permissions {stat.S_IMODE(mode):04o} are too open (only its owner may read a key or token); "
                f"run: chmod 600 {path}"
            )
        return f.read()


# -- key files -------------------------------------------------------------------------------------
def render_key(key: PrivateKey) -> str:
    """A key file: address, public key and private seed (hex)."""
    return json.dumps({"address": key.address, "pubkey": key.pubkey.hex(), "seed": key.seed().hex()}, indent=2) + "\n"


def load_key(path: Path) -> PrivateKey:
    """A key from a key file; ConfigError if it is missing, inconsistent, a link or readable by others."""
    try:
        doc = json.loads(read_secret(path))
        key = PrivateKey(bytes.fromhex(doc["seed"]))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing (run uocd init)") from None
    except (ValueError, KeyError, TypeError, ChainError) as exc:  # ChainError: a seed of the wrong size
        raise ConfigError(f"{path} is not a key file: {exc}") from None
    if doc.get("address") != key.address:
        raise ConfigError(f"{path}: the address does not match the seed")
    return key
