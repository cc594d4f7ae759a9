"""EpochPipeline: the blocks and admission results it hands over equal signing and decode_and_verify
here, whichever process does the work, and no job is done twice."""

from __future__ import annotations

import pickle
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from chain.crypto import PrivateKey
from chain.errors import InvalidTx
from chain.tx import MsgSubmitPriceProposal, Tx, decode_and_verify, sign_tx
from devnet.scenario import parse_scenario
from devnet.simulate import SIGN_AHEAD_TXS, EpochPipeline, iterate_jobs, sign_epoch, start_helpers

SCENARIO = "seed = 3\nepochs = 6\nepoch_length = 4\n" + "".join(
    f'[[validators]]\nname = "v{i}"\nstake = {10 + i}\nstrategy = "honest"\ntrue_cost = 900\nnoise_bps = 300\n'
    for i in range(9)
)


def summary(results: list[Tx | InvalidTx]) -> list[tuple[str, str]]:
    """Comparable outcomes: ("ok", hash) or (code, tx_hash)."""
    return [("ok", r.hash) if isinstance(r, Tx) else (r.code, r.tx_hash) for r in results]


def drain(pipeline: EpochPipeline, epochs: int) -> list[tuple[list[list[bytes]], list[tuple[str, str]]]]:
    """Every epoch's blocks and the admission results the application would get for them."""
    out = []
    for _ in range(epochs):
        blocks = pipeline.next_epoch()
        out.append((blocks, summary(pipeline([raw for block in blocks for raw in block]))))
    return out


def expected(jobs) -> list[tuple[list[list[bytes]], list[tuple[str, str]]]]:
    return [(b, summary(decode_and_verify([r for block in b for r in block]))) for b in map(sign_epoch, jobs)]


def test_helpers_hand_over_the_signed_blocks_and_the_results_of_decode_and_verify():
    scenario = parse_scenario(SCENARIO)
    jobs = list(iterate_jobs(scenario))
    with start_helpers(scenario) as pool:
        pipeline = EpochPipeline(pool, iter(jobs), len(jobs))
        got = drain(pipeline, len(jobs))
    assert got == expected(jobs)
    assert all(code == "ok" for _, results in got for code, _ in results)
    assert pipeline.ready == {} and not pipeline.window


def test_jobs_no_helper_has_started_are_done_here_once():
    jobs = list(iterate_jobs(parse_scenario(SCENARIO)))
    with ProcessPoolExecutor(1) as pool:
        blocker = pool.submit(time.sleep, 2)  # the only worker is busy: no job can start
        pipeline = EpochPipeline(pool, iter(jobs), len(jobs))
        got = drain(pipeline, len(jobs))
        futures = [future for _, future in pipeline.window]
        blocker.cancel()
    assert got == expected(jobs) and futures == []
    # at most two jobs reach the busy worker's call queue; the chain process does the others
    assert len(jobs) - 2 <= pipeline.done_here < len(jobs)


def test_a_run_of_a_million_epochs_plans_only_the_jobs_under_way():
    """The jobs are made as they are submitted: a long run starts signing at once and holds the epochs
    SIGN_AHEAD_TXS covers, not a plan of every epoch."""
    scenario = parse_scenario(SCENARIO.replace("epochs = 6", "epochs = 1000000"))
    taken: list[int] = []

    def counted():
        for job in iterate_jobs(scenario):
            taken.append(job.epoch)
            yield job

    with start_helpers(scenario) as pool:
        pipeline = EpochPipeline(pool, counted(), scenario.epochs)
        blocks = pipeline.next_epoch()
        under_way = len(pipeline.window)
        for _, future in pipeline.window:
            future.cancel()
    assert sum(map(len, blocks)) == 9 and taken == list(range(under_way + 1)), under_way
    assert under_way * 9 <= SIGN_AHEAD_TXS + 9  # the window's transactions, not the run's 9 million


def test_transactions_the_pipeline_never_saw_are_admitted_here_with_their_rejections():
    key = PrivateKey.from_name("adm", "tests")
    raws = [sign_tx(key, "uoc-test", i, [MsgSubmitPriceProposal.of(100 + i)]) for i in range(3)]
    forged = bytearray(raws[1])
    forged[-12] = ord("A") if forged[-12] != ord("A") else ord("B")  # a base64 digit inside the signature
    raws[1] = bytes(forged)
    raws.append(b"not json")
    with ProcessPoolExecutor(1) as pool:
        got = summary(EpochPipeline(pool, iter(()), 0)(raws))
    assert got == summary(decode_and_verify(raws))
    assert [code for code, _ in got] == ["ok", "bad_signature", "ok", "malformed"]


@pytest.mark.parametrize("code", ["bad_signature", "malformed", "wrong_sequence"])
def test_invalid_tx_keeps_its_code_and_hash_across_processes(code):
    error = InvalidTx("reason", code=code)
    error.tx_hash = "ABC"
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.code, copy.tx_hash, str(copy)) == (InvalidTx, code, "ABC", "reason")
