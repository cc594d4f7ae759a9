"""Keys and addresses: BIP-173 bech32, `uoc` addresses over sha256(pubkey)[:20], ed25519 signatures."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.crypto import (
    ADDRESS_PREFIX,
    FIELD_PRIME,
    GROUP_ORDER,
    SMALL_ORDER_Y,
    PrivateKey,
    bech32_decode,
    bech32_encode,
    compute_address,
    is_acceptable_point,
    is_canonical_scalar,
    is_strict_signature_encoding,
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


@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=2048))
def test_keys_and_signatures_made_with_libsodium_are_byte_for_byte_openssls_and_verify(seed: bytes, message: bytes):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = PrivateKey(seed)
    reference = Ed25519PrivateKey.from_private_bytes(seed)
    assert key.pubkey == reference.public_key().public_bytes_raw() and key.seed() == seed
    signature = key.sign(message)
    assert signature == reference.sign(message)
    assert verify_signature(key.pubkey, signature, message)


def test_private_key_rebuilt_from_its_seed_has_the_same_address_and_signatures():
    again = PrivateKey(KEY.seed())
    assert again.address == KEY.address
    assert again.sign(b"m") == KEY.sign(b"m")  # ed25519 signatures are deterministic


@pytest.mark.parametrize("seed", [b"", b"\x00" * 31, b"\x00" * 33, bytearray(32), "\x00" * 32])
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


# --- signature rules: strict RFC 8032, cofactorless, small-order and non-canonical points refused ---

IDENTITY = (1).to_bytes(32, "little")  # the neutral point (x = 0, y = 1), order 1


def test_the_identity_key_with_an_identity_r_and_zero_s_verifies_no_message():
    """Regression: every message "verified" under (A, R, S) = (identity, identity, 0): anyone-can-spend."""
    signature = IDENTITY + bytes(32)
    for message in (b"", b"anything", b"uoc/tx/v1\n{}"):
        assert verify_signature(IDENTITY, signature, message) is False


# "Taming the many EdDSAs" (Chalkias, Garillot, Nikolaenko 2020, eprint 2020/1244), its 12 cases
# (message, A, R ‖ S) as published with ed25519-speccheck, and what the uoc rules answer and why.
TAMING_CASES = [
    pytest.param(
        "8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
        "0000000000000000000000000000000000000000000000000000000000000000",
        False,
        id="0-small-order-A-and-R-S-0:refused-small-order",
    ),
    pytest.param(
        "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43"
        "a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
        False,
        id="1-small-order-A:refused-small-order",
    ),
    pytest.param(
        "aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"
        "8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e",
        False,
        id="2-small-order-R:refused-small-order",
    ),
    pytest.param(
        "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f"
        "87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009",
        True,
        id="3-mixed-order-A-and-R-cofactorless-holds:accepted",
    ),
    pytest.param(
        "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed512"
        "5ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09",
        False,
        id="4-mixed-order-only-the-cofactored-equation-holds:refused-cofactorless",
    ),
    pytest.param(
        "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7"
        "e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405",
        False,
        id="5-mixed-order-A-only-the-cofactored-equation-holds:refused-cofactorless",
    ),
    pytest.param(
        "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
        "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
        "e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e"
        "547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514",
        False,
        id="6-S-above-L:refused-non-canonical-S",
    ),
    pytest.param(
        "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
        "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
        "8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa1942"
        "7e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22",
        False,
        id="7-S-far-above-L-top-bits-set:refused-non-canonical-S",
    ),
    pytest.param(
        "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        "03be9678ac102edcd92b0210bb34d7428d12ffc5df5f37e359941266a4e35f0f",
        False,
        id="8-R-is-y=p-1-with-x-sign-set-non-canonical:refused-small-order",
    ),
    pytest.param(
        "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        "ca8c5b64cd208982aa38d4936621a4775aa233aa0505711d8fdcfdaa943d4908",
        False,
        id="9-R-is-y=p-1-with-x-sign-set-non-canonical:refused-small-order",
    ),
    pytest.param(
        "e96b7021eb39c1a163b6da4e3093dcd3f21387da4cc4572be588fafae23c155b",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dc"
        "a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
        False,
        id="10-A-is-y=p-1-with-x-sign-set-non-canonical:refused-small-order",
    ),
    pytest.param(
        "39a591f5321bbe07fd5a23dc2f39d025d74526615746727ceefd6e82ae65c06f",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dc"
        "a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
        False,
        id="11-A-is-y=p-1-with-x-sign-set-non-canonical:refused-small-order",
    ),
]


@pytest.mark.parametrize(("message", "pubkey", "signature", "accepted"), TAMING_CASES)
def test_taming_the_many_eddsas_cases_get_the_outcome_of_the_uoc_rules(message, pubkey, signature, accepted):
    """0-2, 8-11: a point of small order (8-11 in a non-canonical encoding too; with cryptography 51
    the library alone accepts 0-2 and 11). 3: A and R have a small-order component but are not small,
    and [S]B = R + [k]A holds: accepted, as by libsodium. 4-5: only the cofactored equation holds;
    the rules are cofactorless (the library's equation, pinned by these two cases). 6-7: S ≥ L."""
    assert verify_signature(bytes.fromhex(pubkey), bytes.fromhex(signature), bytes.fromhex(message)) is accepted


# An independent reference: the twisted Edwards curve −x² + y² = 1 + d·x²·y² over GF(p).
_P = 2**255 - 19
_D = -121665 * pow(121666, -1, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _ref_decode(y: int, sign: int) -> tuple[int, int] | None:
    """RFC 8032 §5.1.3 point decoding of a canonical y; None if there is no such point."""
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = u * v**3 * pow(u * v**7, (_P - 5) // 8, _P) % _P
    if v * x * x % _P == (-u) % _P:
        x = x * _SQRT_M1 % _P
    elif v * x * x % _P != u:
        return None
    if x == 0 and sign:
        return None
    return ((_P - x) % _P if x & 1 != sign else x), y


def _ref_add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """Affine Edwards addition."""
    (x1, y1), (x2, y2) = a, b
    t = _D * x1 * x2 * y1 * y2 % _P
    return (x1 * y2 + x2 * y1) * pow(1 + t, -1, _P) % _P, (y1 * y2 + x1 * x2) * pow(1 - t, -1, _P) % _P


def test_the_small_order_y_set_is_the_y_of_the_eight_torsion_points():
    assert FIELD_PRIME == _P and GROUP_ORDER == 2**252 + 27742317777372353535851937790883648493
    order_8 = [y for y in SMALL_ORDER_Y if y not in (0, 1, _P - 1)]
    point = _ref_decode(order_8[0], 0)
    assert point is not None
    multiples, current = [], (0, 1)
    for _ in range(8):
        multiples.append(current)
        current = _ref_add(current, point)
    assert current == (0, 1) and len(set(multiples)) == 8  # a point of order exactly 8 ...
    assert {y for _, y in multiples} == SMALL_ORDER_Y  # ... whose multiples are every small-order y


def _encode(y: int, sign: int) -> bytes:
    """A 32-byte point encoding of y (any value below 2^255) and x's sign bit."""
    return (y | sign << 255).to_bytes(32, "little")


# The 14 encodings of small-order points libsodium blocks: 8 canonical, 2 with x = 0 and the sign
# bit set (y = 1, y = p−1), and 4 with y ≥ p (y = p ≡ 0, y = p + 1 ≡ 1, each sign).
SMALL_ORDER_ENCODINGS = [
    *(_encode(y, 0) for y in sorted(SMALL_ORDER_Y)),
    *(_encode(y, 1) for y in sorted(SMALL_ORDER_Y - {1, _P - 1})),
    _encode(1, 1),
    _encode(_P - 1, 1),
    _encode(_P, 0),
    _encode(_P, 1),
    _encode(_P + 1, 0),
    _encode(_P + 1, 1),
]


def test_all_fourteen_encodings_of_small_order_points_are_refused_as_a_and_as_r():
    assert len(set(SMALL_ORDER_ENCODINGS)) == 14
    key_r = KEY.sign(b"m")[:32]
    for encoding in SMALL_ORDER_ENCODINGS:
        assert not is_acceptable_point(encoding), encoding.hex()
        assert not verify_signature(encoding, encoding + bytes(32), b"m")
        assert not verify_signature(KEY.pubkey, encoding + KEY.sign(b"m")[32:], b"m")
        assert not verify_signature(encoding, key_r + bytes(32), b"m")


@pytest.mark.parametrize("y", [_P, _P + 2, _P + 18, 2**255 - 1])
def test_a_point_encoding_with_y_at_or_above_p_is_refused(y):
    assert not is_acceptable_point(_encode(y, 0)) and not is_acceptable_point(_encode(y, 1))


def test_a_scalar_is_canonical_below_l_only():
    assert is_canonical_scalar((GROUP_ORDER - 1).to_bytes(32, "little"))
    assert not is_canonical_scalar(GROUP_ORDER.to_bytes(32, "little"))
    assert not is_canonical_scalar(bytes([0xFF]) * 32)


def test_a_valid_signature_with_s_plus_l_is_refused():
    """The malleated twin (R, S + L) satisfies the same equation; only the canonical S is accepted."""
    message = b"price 300"
    signature = KEY.sign(message)
    s = int.from_bytes(signature[32:], "little") + GROUP_ORDER
    assert s < 2**256 and verify_signature(KEY.pubkey, signature, message)
    assert not verify_signature(KEY.pubkey, signature[:32] + s.to_bytes(32, "little"), message)


@given(st.binary(min_size=32, max_size=32))
def test_every_key_of_a_seed_is_an_acceptable_point(seed):
    key = PrivateKey(seed)
    assert is_acceptable_point(key.pubkey) and verify_signature(key.pubkey, key.sign(b"m"), b"m")


def _openssl_verdict(pubkey: bytes, signature: bytes, message: bytes) -> bool:
    """The rules with OpenSSL (`cryptography`) deciding the equation: the library the chain used before."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not is_strict_signature_encoding(pubkey, signature):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(pubkey).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@pytest.mark.parametrize(("message", "pubkey", "signature", "accepted"), TAMING_CASES)
def test_openssl_behind_the_rules_checks_gives_the_same_taming_verdicts(message, pubkey, signature, accepted):
    """The equation's library may change (libsodium now, OpenSSL before): the verdicts may not."""
    assert _openssl_verdict(bytes.fromhex(pubkey), bytes.fromhex(signature), bytes.fromhex(message)) is accepted


@given(
    st.binary(min_size=32, max_size=32),
    st.binary(max_size=200),
    st.integers(min_value=0, max_value=64 * 8 - 1),
    st.booleans(),
)
def test_libsodium_and_openssl_agree_on_valid_and_bit_flipped_signatures(seed, message, bit, flip):
    """A signature, or one with any one bit flipped, gets the same verdict from either library."""
    key = PrivateKey(seed)
    signature = bytearray(key.sign(message))
    if flip:
        signature[bit // 8] ^= 1 << (bit % 8)
    verdict = verify_signature(key.pubkey, bytes(signature), message)
    assert verdict is _openssl_verdict(key.pubkey, bytes(signature), message) and verdict is not flip
