"""PrefetchingAdmission gives exactly what decode_and_verify gives, whichever process does the work."""

from __future__ import annotations

import pickle
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from chain.crypto import PrivateKey
from chain.errors import InvalidTx
from chain.tx import MsgSubmitPriceProposal, Tx, decode_and_verify, sign_tx
from devnet.simulate import PrefetchingAdmission, start_helpers

KEYS = [PrivateKey.from_name(f"adm-{i}", "tests") for i in range(70)]


def mixed_batch() -> list[bytes]:
    """Valid transactions, one with a forged signature and one that is not JSON."""
    raws = [sign_tx(k, "uoc-test", 0, [MsgSubmitPriceProposal.of(100 + i)]) for i, k in enumerate(KEYS)]
    forged = bytearray(raws[5])
    forged[-12] = ord("A") if forged[-12] != ord("A") else ord("B")  # a base64 digit inside the signature
    raws[5] = bytes(forged)
    raws[9] = b"not json"
    return raws


def summary(results: list[Tx | InvalidTx]) -> list[tuple[str, str]]:
    """Comparable outcomes: ("ok", hash) or (code, tx_hash)."""
    return [("ok", r.hash) if isinstance(r, Tx) else (r.code, r.tx_hash) for r in results]


def test_results_from_helper_processes_equal_decode_and_verify_here():
    raws = mixed_batch()
    with start_helpers() as pool:
        admission = PrefetchingAdmission(pool)
        admission.prefetch(raws)
        got = admission(raws)
    assert summary(got) == summary(decode_and_verify(raws))
    assert summary(got)[5][0] == "bad_signature" and summary(got)[9][0] == "malformed"
    assert admission.pending == {} and admission.ready == {} and admission.chunks == {}


def test_chunks_the_pool_has_not_started_are_done_here_once():
    raws = mixed_batch()
    with ProcessPoolExecutor(1) as pool:
        blocker = pool.submit(time.sleep, 2)  # the only worker is busy: no chunk can start
        admission = PrefetchingAdmission(pool)
        admission.prefetch(raws)
        futures = list(admission.chunks)
        got = admission(raws)
        # the executor hands one or two queued chunks to its call queue at once; the rest are taken over
        assert sum(f.cancelled() for f in futures) >= len(futures) - 2 >= 1
        blocker.cancel()
    assert summary(got) == summary(decode_and_verify(raws))


def test_transactions_never_prefetched_are_done_here():
    raws = mixed_batch()
    with ProcessPoolExecutor(1) as pool:
        admission = PrefetchingAdmission(pool)
        assert summary(admission(raws)) == summary(decode_and_verify(raws))


def test_results_arrive_in_the_order_asked_not_the_order_prefetched():
    raws = mixed_batch()
    with start_helpers() as pool:
        admission = PrefetchingAdmission(pool)
        admission.prefetch(raws)
        asked = raws[::-1]
        got = admission(asked)
    assert summary(got) == summary(decode_and_verify(asked))


@pytest.mark.parametrize("code", ["bad_signature", "malformed", "wrong_sequence"])
def test_invalid_tx_keeps_its_code_and_hash_across_processes(code):
    error = InvalidTx("reason", code=code)
    error.tx_hash = "ABC"
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.code, copy.tx_hash, str(copy)) == (InvalidTx, code, "ABC", "reason")
