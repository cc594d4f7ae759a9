"""Benchmark the ed25519 verification libraries the chain could use, on one core, and check each
one's verdicts on the 12 cases of "Taming the many EdDSAs" with and without the chain's rules.

The chain's rules (chain/crypto.py) are checked in integers before any library runs, so the
library only decides the equation. A candidate is usable only if, behind those checks, it gives the
rules' verdict on every case (the cofactorless equation: cases 4 and 5 refused).

Run: .venv/bin/python bench/bench_sigs.py [--messages 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey  # noqa: E402

from chain.crypto import is_strict_signature_encoding, verify_signature  # noqa: E402

REPEATS = 5
Verify = Callable[[bytes, bytes, bytes], bool]

# (message, A, R ‖ S, the rules' verdict) of "Taming the many EdDSAs" (eprint 2020/1244), as in
# tests/chain/test_crypto.py, which pins them against chain.crypto.verify_signature.
TAMING = [
    (
        "8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a0000000000000000000000000000000000000000000000000000000000000000",
        False,
    ),  # noqa: E501
    (
        "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
        False,
    ),  # noqa: E501
    (
        "aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e",
        False,
    ),  # noqa: E501
    (
        "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009",
        True,
    ),  # noqa: E501
    (
        "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed5125ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09",
        False,
    ),  # noqa: E501
    (
        "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405",
        False,
    ),  # noqa: E501
    (
        "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
        "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
        "e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514",
        False,
    ),  # noqa: E501
    (
        "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
        "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
        "8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa19427e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22",
        False,
    ),  # noqa: E501
    (
        "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff03be9678ac102edcd92b0210bb34d7428d12ffc5df5f37e359941266a4e35f0f",
        False,
    ),  # noqa: E501
    (
        "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffca8c5b64cd208982aa38d4936621a4775aa233aa0505711d8fdcfdaa943d4908",
        False,
    ),  # noqa: E501
    (
        "e96b7021eb39c1a163b6da4e3093dcd3f21387da4cc4572be588fafae23c155b",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
        False,
    ),  # noqa: E501
    (
        "39a591f5321bbe07fd5a23dc2f39d025d74526615746727ceefd6e82ae65c06f",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
        False,
    ),  # noqa: E501
]


def verify_cryptography(pubkey: bytes, signature: bytes, message: bytes) -> bool:
    """OpenSSL through `cryptography`, a fresh key object each time."""
    try:
        Ed25519PublicKey.from_public_bytes(pubkey).verify(signature, message)
    except Exception:  # noqa: BLE001 - any refusal is a refusal
        return False
    return True


def get_candidates() -> dict[str, Verify]:
    """Every library that imports here, by name."""
    candidates: dict[str, Verify] = {"cryptography (OpenSSL)": verify_cryptography}
    try:
        from nacl.bindings import crypto_sign_open
        from nacl.exceptions import BadSignatureError

        def verify_nacl(pubkey: bytes, signature: bytes, message: bytes) -> bool:
            try:
                crypto_sign_open(signature + message, pubkey)
            except (BadSignatureError, ValueError):
                return False
            return True

        candidates["PyNaCl (libsodium)"] = verify_nacl
    except ImportError:
        print("PyNaCl not installed (pip install pynacl): left out")
    try:
        import ed25519_zebra

        def verify_zebra(pubkey: bytes, signature: bytes, message: bytes) -> bool:
            try:
                return bool(ed25519_zebra.ed_verify(signature, message, pubkey))
            except Exception:  # noqa: BLE001
                return False

        candidates["ed25519-zebra (ZIP-215)"] = verify_zebra
    except ImportError:
        print("py-ed25519-zebra-bindings not installed: left out")
    return candidates


def get_verdicts(verify: Verify, *, with_rules: bool) -> list[bool]:
    """The library's verdict on each Taming case, behind the chain's integer checks when `with_rules`."""
    verdicts = []
    for message, pubkey, signature in ((bytes.fromhex(m), bytes.fromhex(a), bytes.fromhex(s)) for m, a, s, _ in TAMING):
        ok = (not with_rules or is_strict_signature_encoding(pubkey, signature)) and verify(pubkey, signature, message)
        verdicts.append(ok)
    return verdicts


def make_signed(count: int) -> list[tuple[bytes, bytes, bytes]]:
    """`count` distinct (pubkey, signature, message) triples from 64 keys, messages of 150 bytes like a tx's."""
    keys = [Ed25519PrivateKey.from_private_bytes(os.urandom(32)) for _ in range(64)]
    out = []
    for i in range(count):
        key = keys[i % len(keys)]
        message = i.to_bytes(8, "big") + os.urandom(142)
        out.append((key.public_key().public_bytes_raw(), key.sign(message), message))
    return out


def measure_rate(verify: Verify, signed: list[tuple[bytes, bytes, bytes]]) -> float:
    """Verifications per second on one core, median of REPEATS passes over `signed`."""
    assert all(verify(p, s, m) for p, s, m in signed[:16])
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for pubkey, signature, message in signed:
            verify(pubkey, signature, message)
        times.append(time.perf_counter() - start)
    return len(signed) / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000, help="distinct signed messages per pass")
    args = parser.parse_args()
    rules = [accepted for *_, accepted in TAMING]
    signed = make_signed(args.messages)
    candidates = get_candidates()
    base = measure_rate(verify_cryptography, signed)
    results = []
    for name, verify in candidates.items():
        rate = base if verify is verify_cryptography else measure_rate(verify, signed)
        alone = [i for i, ok in enumerate(get_verdicts(verify, with_rules=False)) if ok]
        ruled = get_verdicts(verify, with_rules=True)
        agrees = ruled == rules
        results.append(
            {
                "library": name,
                "verify_per_s": round(rate),
                "ratio_to_cryptography": round(rate / base, 2),
                "accepts_alone": alone,
                "agrees_with_rules_behind_checks": agrees,
            }
        )
        print(
            f"{name:26} {rate:9,.0f} verify/s  {rate / base:4.2f}x cryptography   accepts alone: cases {alone}   "
            f"behind the chain's checks: {'the rules exactly' if agrees else 'DIFFERS from the rules'}"
        )
    chain_rate = measure_rate(verify_signature, signed)
    print(f"{'chain.crypto.verify_signature':26} {chain_rate:9,.0f} verify/s  {chain_rate / base:4.2f}x cryptography")
    print(
        json.dumps(
            {
                "messages": len(signed),
                "candidates": results,
                "chain_verify_per_s": round(chain_rate),
                "chain_ratio_to_cryptography": round(chain_rate / base, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
