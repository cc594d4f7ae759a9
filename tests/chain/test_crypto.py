"""Keys and addresses: BIP-173 bech32, `uoc` addresses over sha256(pubkey)[:20], ed25519 signatures."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.crypto import (
    ADDRESS_PREFIX,
    PrivateKey,
    bech32_decode,
    bech32_encode,
    compute_address,
    is_valid_address,
    verify_signature,
)
from chain.errors import InvalidTx

# --- an independent BIP-173 reference encoder (from the BIP's reference implementation) ---------

_REF_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _ref_polymod(values):
    generator = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= generator[i] if ((top >> i) & 1) else 0
    return chk


def _ref_encode(hrp: str, payload: bytes) -> str:
    acc = bits = 0
    data = []
    for byte in payload:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    polymod = _ref_polymod(expanded + data + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_REF_CHARSET[d] for d in data + checksum)


KEY = PrivateKey.from_name("crypto-test")
ADDRESS = KEY.address


def _flip_last_char(text: str) -> str:
    last = text[-1]
    return text[:-1] + ("q" if last != "q" else "p")


# --- bech32 ---------------------------------------------------------------------------------


@given(st.binary(min_size=0, max_size=50))
def test_bech32_encode_then_decode_round_trips_any_payload(payload):
    text = bech32_encode("uoc", payload)
    assert bech32_decode(text) == ("uoc", payload)
    assert text == _ref_encode("uoc", payload)


@pytest.mark.parametrize(
    "text",
    [
        "a12uel5l",
        "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
        "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
        "11" + "q" * 82 + "c8247j",
        "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    ],
)
def test_bech32_decode_accepts_the_bip173_valid_vectors_and_reencodes_them_identically(text):
    hrp, payload = bech32_decode(text)
    assert bech32_encode(hrp, payload) == text


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("pzry9x0s0muk", id="no-separator"),
        pytest.param("1pzry9x0s0muk", id="empty-hrp"),
        pytest.param("x1b4n0q5v", id="invalid-data-character"),
        pytest.param("li1dgmt3", id="checksum-too-short"),
        pytest.param("A1G7SGD8", id="upper-case"),
        pytest.param("10a06t8", id="empty-hrp-2"),
        pytest.param("1qzzfhee", id="empty-hrp-3"),
        pytest.param("a12UEL5L", id="mixed-case"),
        pytest.param("a12uel5m", id="bad-checksum"),
        pytest.param("a" * 91, id="too-long"),
    ],
)
def test_bech32_decode_rejects_the_bip173_invalid_vectors(text):
    with pytest.raises(ValueError):
        bech32_decode(text)


# --- addresses ------------------------------------------------------------------------------


@given(st.binary(min_size=32, max_size=32))
def test_address_is_bech32_uoc_over_the_first_20_bytes_of_sha256_of_the_pubkey(pubkey):
    address = compute_address(pubkey)
    digest = hashlib.sha256(pubkey).digest()
    assert address.startswith("uoc1")
    assert len(address) == len("uoc1") + 32 + 6
    assert bech32_decode(address) == ("uoc", digest[:20])
    assert address == _ref_encode("uoc", digest[:20])
    assert is_valid_address(address)


def test_private_key_address_is_the_address_of_its_public_key():
    assert ADDRESS_PREFIX == "uoc"
    assert len(KEY.pubkey) == 32
    assert KEY.address == compute_address(KEY.pubkey)
    assert KEY.address.startswith("uoc1")


def test_private_key_from_name_is_deterministic_and_name_dependent():
    assert PrivateKey.from_name("x").address == PrivateKey.from_name("x").address
    assert PrivateKey.from_name("x").address != PrivateKey.from_name("y").address
    assert PrivateKey.from_name("x", salt="s1").address != PrivateKey.from_name("x", salt="s2").address


def test_private_key_rebuilt_from_its_seed_has_the_same_address_and_signatures():
    again = PrivateKey(KEY.seed())
    assert again.address == KEY.address
    assert again.sign(b"m") == KEY.sign(b"m")  # ed25519 signatures are deterministic


@pytest.mark.parametrize("seed", [b"", b"\x00" * 31, b"\x00" * 33])
def test_private_key_refuses_a_seed_that_is_not_32_bytes(seed):
    with pytest.raises(InvalidTx) as info:
        PrivateKey(seed)
    assert info.value.code == "invalid_key"


@pytest.mark.parametrize(
    "address",
    [
        pytest.param(_flip_last_char(ADDRESS), id="bad-checksum"),
        pytest.param(ADDRESS[:10] + ("q" if ADDRESS[10] != "q" else "p") + ADDRESS[11:], id="bad-data-char"),
        pytest.param(ADDRESS.upper(), id="upper-case"),
        pytest.param(ADDRESS[:5] + ADDRESS[5].upper() + ADDRESS[6:], id="mixed-case"),
        pytest.param(bech32_encode("cosmos", hashlib.sha256(KEY.pubkey).digest()[:20]), id="wrong-prefix-cosmos"),
        pytest.param(bech32_encode("uo", hashlib.sha256(KEY.pubkey).digest()[:20]), id="wrong-prefix-uo"),
        pytest.param(bech32_encode("uocx", hashlib.sha256(KEY.pubkey).digest()[:20]), id="wrong-prefix-uocx"),
        pytest.param(bech32_encode("uoc", hashlib.sha256(KEY.pubkey).digest()[:19]), id="payload-19-bytes"),
        pytest.param(bech32_encode("uoc", hashlib.sha256(KEY.pubkey).digest()[:21]), id="payload-21-bytes"),
        pytest.param(bech32_encode("uoc", hashlib.sha256(KEY.pubkey).digest()), id="payload-32-bytes"),
        pytest.param(bech32_encode("uoc", b""), id="empty-payload"),
        pytest.param(ADDRESS[:-1], id="truncated"),
        pytest.param(ADDRESS + "q", id="extended"),
        pytest.param(" " + ADDRESS, id="leading-space"),
        pytest.param(ADDRESS + "\n", id="trailing-newline"),
        pytest.param("uoc1", id="prefix-only"),
        pytest.param("", id="empty"),
        pytest.param(None, id="none"),
        pytest.param(42, id="int"),
        pytest.param(ADDRESS.encode(), id="bytes"),
        pytest.param([ADDRESS], id="list"),
    ],
)
def test_is_valid_address_rejects_malformed_addresses(address):
    assert is_valid_address(address) is False


def test_is_valid_address_accepts_a_real_address():
    assert is_valid_address(ADDRESS) is True


# --- signatures -----------------------------------------------------------------------------


def test_signature_verifies_for_the_signed_message_only():
    message = b"uoc/tx/v1\n{}"
    signature = KEY.sign(message)
    assert len(signature) == 64
    assert verify_signature(KEY.pubkey, signature, message)
    assert not verify_signature(KEY.pubkey, signature, message + b" ")
    assert not verify_signature(KEY.pubkey, signature, b"")


def test_signature_does_not_verify_under_another_key():
    message = b"hello"
    other = PrivateKey.from_name("someone-else")
    assert not verify_signature(other.pubkey, KEY.sign(message), message)


@pytest.mark.parametrize("index", [0, 31, 32, 63])
def test_a_signature_with_one_flipped_bit_does_not_verify(index):
    message = b"price 300"
    signature = bytearray(KEY.sign(message))
    signature[index] ^= 0x01
    assert not verify_signature(KEY.pubkey, bytes(signature), message)


@pytest.mark.parametrize(
    ("pubkey", "signature"),
    [
        pytest.param(KEY.pubkey[:31], None, id="short-pubkey"),
        pytest.param(KEY.pubkey + b"\x00", None, id="long-pubkey"),
        pytest.param(b"", None, id="empty-pubkey"),
        pytest.param(None, b"\x00" * 63, id="short-signature"),
        pytest.param(None, b"", id="empty-signature"),
    ],
)
def test_verify_signature_returns_false_for_wrongly_sized_keys_or_signatures(pubkey, signature):
    message = b"m"
    assert (
        verify_signature(
            KEY.pubkey if pubkey is None else pubkey,
            KEY.sign(message) if signature is None else signature,
            message,
        )
        is False
    )


def test_ed25519_matches_the_rfc8032_test_vector_1():
    key = PrivateKey(bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
    assert key.pubkey.hex() == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    expected = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert key.sign(b"") == expected
    assert verify_signature(key.pubkey, expected, b"")
