"""Tendermint BFT consensus (CONSENSUS.md), split along CometBFT's seams; this module only re-exports.

    steps          the round steps and their timeouts (`Timeouts`, `Timeout`)
    validator_set  the validators of a height and proposer selection (`ValidatorSet`)
    vote_set       vote sets, the +2/3 and +1/3 thresholds and commit checks (`verify_commit`)
    sign_state     what a validator persists to never double-sign (`SignState`)
    evidence_pool  the bounded pool of double signs waiting for a block (`EvidencePool`)
    actions        what the engine returns to its host, and what it asks of it (`Action`, `Host`)
    engine         the sans-IO state machine (`Consensus`)

The engine `Consensus` never does I/O and never reads a clock: the host passes `now_ms` in,
feeds it messages, timeouts and fetched blocks, and executes the returned actions **in order**:

    actions = engine.start_height(height=h, validator_set=vs, last_commit=c, last_block_id=b,
                                  last_time_ms=t, app_hash=a, now_ms=now)
    actions += engine.on_message(vote_or_proposal, now_ms)      # InvalidMessage on bad input
    actions += engine.on_timeout(Timeout(h, r, "prevote"), now_ms)
    # Persist(sign_state) -> write durably before the next action; Broadcast(msg) -> gossip;
    # ScheduleTimeout(t, delay_ms) -> call on_timeout(t) later; Decide(block, commit) -> apply,
    # then start_height(h + 1) after timeouts.commit_ms; RecordEvidence(e) -> store and gossip;
    # FetchBlock(h, id). The host also answers `select_evidence` and `reap_txs` for new blocks, and
    # tells the engine of peers' evidence (`add_evidence`) and committed evidence (`remove_evidence`).

Rules are the numbered rules of CONSENSUS.md "Rules"; see docs/consensus.md for the mapping.
"""

from .actions import Action, Broadcast, Decide, FetchBlock, Host, Persist, RecordEvidence, ScheduleTimeout
from .engine import Consensus
from .sign_state import SignedRecord, SignState
from .steps import COMMIT, PRECOMMIT, PREVOTE, PROPOSE, Timeout, Timeouts
from .validator_set import ValidatorSet, compute_joiner_priority
from .vote_set import compute_block_time, compute_median_time, is_one_third, is_quorum, verify_commit

__all__ = [
    "COMMIT",
    "PRECOMMIT",
    "PREVOTE",
    "PROPOSE",
    "Action",
    "Broadcast",
    "Consensus",
    "Decide",
    "FetchBlock",
    "Host",
    "Persist",
    "RecordEvidence",
    "ScheduleTimeout",
    "SignState",
    "SignedRecord",
    "Timeout",
    "Timeouts",
    "ValidatorSet",
    "compute_block_time",
    "compute_joiner_priority",
    "compute_median_time",
    "is_one_third",
    "is_quorum",
    "verify_commit",
]
