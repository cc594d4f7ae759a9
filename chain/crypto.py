"""Keys and addresses: ed25519 signatures and bech32 `uoc` addresses over sha256(pubkey)[:20].

Signature rules (consensus-critical, the same whatever the library version): strict RFC 8032
§5.1.7 with the cofactorless equation [S]B = R + [k]A, and before it, in integers here, the
rejections libsodium makes and "Taming the many EdDSAs" (Chalkias, Garillot, Nikolaenko 2020)
recommends: A and R must be canonical (y < p) and not one of the 8 points of small order (so none
of the 14 encodings of such points, canonical or not, passes), and S must be canonical (S < L).

The equation is checked by libsodium (PyNaCl), about twice as fast here as OpenSSL
(`bench/bench_sigs.py`); keys and signing are libsodium's too (RFC 8032 signatures are deterministic:
its bytes are OpenSSL's, tests/chain/test_crypto.py). Behind the integer checks both libraries give the
rules' verdict on every published edge case.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from typing import TypeGuard

from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError

from .errors import InvalidTx

ADDRESS_PREFIX = "uoc"
PUBKEY_SIZE = 32
SIGNATURE_SIZE = 64

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_INDEX = {c: i for i, c in enumerate(_CHARSET)}
_GENERATORS = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    """The BIP-173 checksum polynomial."""
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GENERATORS[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    """Expand the human-readable part for the checksum."""
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int] | None:
    """Regroup a bit stream from `from_bits` to `to_bits` groups; None if the padding is invalid."""
    acc = bits = 0
    out: list[int] = []
    maxv = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad and bits:
        out.append((acc << (to_bits - bits)) & maxv)
    elif not pad and (bits >= from_bits or (acc << (to_bits - bits)) & maxv):
        return None
    return out


BECH32_MAX_LENGTH = 90  # BIP-173; also what keeps the address-check cache bounded in bytes


def bech32_encode(hrp: str, payload: bytes) -> str:
    """Encode bytes as bech32 (BIP-173) with the given prefix."""
    data = _convert_bits(payload, 8, 5, True)
    assert data is not None
    polymod = _polymod(_hrp_expand(hrp) + data + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in data + checksum)


def bech32_decode(text: str) -> tuple[str, bytes]:
    """Decode a bech32 string to (prefix, payload); raise ValueError if it is not valid bech32."""
    if not isinstance(text, str) or text.lower() != text or not 8 <= len(text) <= BECH32_MAX_LENGTH:
        raise ValueError(f"not a lower-case bech32 string of 8 to {BECH32_MAX_LENGTH} characters")
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise ValueError("bech32 separator '1' missing or misplaced")
    hrp, rest = text[:pos], text[pos + 1 :]
    if any(c not in _CHARSET_INDEX for c in rest):
        raise ValueError("bech32 data has a character outside the bech32 alphabet")
    data = [_CHARSET_INDEX[c] for c in rest]
    if _polymod(_hrp_expand(hrp) + data) != 1:
        raise ValueError("bech32 checksum does not match")
    payload = _convert_bits(data[:-6], 5, 8, False)
    if payload is None:
        raise ValueError("bech32 padding is invalid")
    return hrp, bytes(payload)


@lru_cache(maxsize=65536)
def compute_address(pubkey: bytes) -> str:
    """The bech32 `uoc` address of an ed25519 public key: sha256(pubkey)[:20]."""
    return bech32_encode(ADDRESS_PREFIX, hashlib.sha256(pubkey).digest()[:20])


def is_valid_address(address: object) -> TypeGuard[str]:
    """True if `address` is a well-formed bech32 `uoc` address of 20 bytes."""
    return isinstance(address, str) and len(address) <= BECH32_MAX_LENGTH and _is_valid_address(address)


@lru_cache(maxsize=65536)
def _is_valid_address(address: str) -> bool:
    """is_valid_address for a string (cached: bech32 checksums are slow in Python)."""
    try:
        hrp, payload = bech32_decode(address)
    except ValueError:
        return False
    return hrp == ADDRESS_PREFIX and len(payload) == 20


FIELD_PRIME = 2**255 - 19  # p: a point is encoded as y < p (255 bits) and the sign of x (the top bit)
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493  # L: S of a signature is below it
ORDER_8_Y = 0x7A03AC9277FDC74EC6CC392CFA53202A0F67100D760B3CBA4FD84D3D706A17C7  # y of 2 of the 4 points of order 8
# The y of the 8 points of small order: order 1 (y = 1), 2 (y = p−1), 4 (y = 0) and 8 (±ORDER_8_Y).
SMALL_ORDER_Y = frozenset({0, 1, FIELD_PRIME - 1, ORDER_8_Y, FIELD_PRIME - ORDER_8_Y})
_Y_MASK = (1 << 255) - 1


def get_point_y(encoding: bytes) -> int:
    """The y coordinate of a 32-byte point encoding: little-endian, without the top bit (x's sign)."""
    return int.from_bytes(encoding, "little") & _Y_MASK


def is_acceptable_point(encoding: bytes) -> bool:
    """True if a point encoding is canonical (y < p) and is not a point of small order, whatever x's sign bit."""
    y = get_point_y(encoding)
    return y < FIELD_PRIME and y not in SMALL_ORDER_Y


def is_canonical_scalar(encoding: bytes) -> bool:
    """True if a 32-byte little-endian scalar is below the group order L."""
    return int.from_bytes(encoding, "little") < GROUP_ORDER


def is_strict_signature_encoding(pubkey: bytes, signature: bytes) -> bool:
    """True if A (pubkey), R and S (signature) have their sizes and pass the rejections of the rules."""
    return (
        len(pubkey) == PUBKEY_SIZE
        and len(signature) == SIGNATURE_SIZE
        and is_acceptable_point(pubkey)
        and is_acceptable_point(signature[:32])
        and is_canonical_scalar(signature[32:])
    )


def verify_signature(pubkey: bytes, signature: bytes, message: bytes) -> bool:
    """True if `signature` is pubkey's ed25519 signature of `message` under the rules (module docstring)."""
    if not is_strict_signature_encoding(pubkey, signature):
        return False
    try:
        crypto_sign_open(signature + message, pubkey)
    except (BadSignatureError, ValueError):
        return False
    return True


class PrivateKey:
    """An ed25519 signing key with its public key and `uoc` address."""

    __slots__ = ("_secret", "pubkey", "address")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise InvalidTx("an ed25519 private key seed is 32 bytes", code="invalid_key")
        # libsodium's key pair: the secret is the seed and the public key (it signs in half OpenSSL's time)
        self.pubkey, self._secret = crypto_sign_seed_keypair(seed)
        self.address = compute_address(self.pubkey)

    @classmethod
    def generate(cls) -> PrivateKey:
        """A fresh random key (for wallets and tests, never inside the state machine)."""
        return cls(os.urandom(32))

    @classmethod
    def from_name(cls, name: str, salt: str = "uoc-devnet") -> PrivateKey:
        """A deterministic key derived from a name (devnets and simulations only)."""
        return cls(hashlib.sha256(f"{salt}/{name}".encode()).digest())

    def seed(self) -> bytes:
        """The 32-byte private seed."""
        return self._secret[:32]

    def sign(self, message: bytes) -> bytes:
        """Sign `message` (RFC 8032 signatures are deterministic: libsodium's bytes are OpenSSL's)."""
        return crypto_sign(message, self._secret)[:64]
