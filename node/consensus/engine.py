"""The sans-IO Tendermint engine `Consensus`: one node's state machine for the current height.

It never does I/O and never reads a clock (see the package docstring for the calling protocol).
Rules are the numbered rules of CONSENSUS.md "Rules"; see docs/consensus.md for the mapping.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from chain.crypto import PrivateKey
from chain.errors import ChainError

from ..blocks import (
    MAX_DECODED_BLOCK_BYTES,
    MAX_DECODED_BLOCK_EVIDENCE,
    MAX_DECODED_BLOCK_TXS,
    Block,
    Commit,
    Evidence,
    Header,
    Proposal,
    Vote,
    check_block_hashes,
    check_block_shape,
    check_proposal_shape,
    check_vote_shape,
    compute_commit_hash,
    compute_evidence_hash,
    compute_txs_hash,
    make_evidence,
    sign_proposal,
    sign_vote,
)
from ..errors import DoubleSignRefused, InvalidCommit, InvalidMessage, NodeError
from .actions import Action, Broadcast, Decide, FetchBlock, Host, Persist, RecordEvidence, ScheduleTimeout
from .evidence_pool import EvidencePool
from .sign_state import SignState
from .steps import COMMIT, PRECOMMIT, PREVOTE, PROPOSE, Timeout, Timeouts
from .validator_set import ValidatorSet
from .vote_set import MAX_VOTES_PER_VALIDATOR, HeightVoteSet, compute_block_time, is_one_third, verify_commit

log = logging.getLogger("uoc.consensus")

FUTURE_HEIGHTS = 2  # messages up to h + 2 are buffered
MAX_FUTURE_MESSAGES = 4096  # per buffered height
MAX_FUTURE_BYTES = 2 * MAX_DECODED_BLOCK_BYTES + 1024 * 1024  # per buffered height: two full proposals and votes
MAX_FUTURE_SIGNER_BYTES = MAX_DECODED_BLOCK_BYTES + 256 * 1024  # per signer and buffered height
MAX_FUTURE_PER_SLOT = 2  # buffered messages per (height, signer, round, type): an equivocation, not a flood
VOTE_BYTES = 256  # what a vote counts against the buffer's byte budgets (about its encoded size)
PROPOSAL_BYTES = 512  # a proposal's header and signature; its block's txs and last commit count on top
MAX_ROUND_AHEAD = 64  # a round more than this above ours is not plausible
MAX_PROPOSALS_PER_ROUND = 2  # conflicting proposals kept per round (a byzantine proposer may send many)


def compute_capped_txs(txs: list[bytes]) -> tuple[bytes, ...]:
    """The longest prefix of `txs` within the decoding bounds (the host's reap applies the params' limits)."""
    out: list[bytes] = []
    size = 0
    for tx in txs[:MAX_DECODED_BLOCK_TXS]:
        if size + len(tx) > MAX_DECODED_BLOCK_BYTES:
            break
        out.append(tx)
        size += len(tx)
    return tuple(out)


class Consensus:
    """One node's Tendermint state machine for the current height (sans-IO)."""

    def __init__(
        self,
        *,
        chain_id: str,
        signer: PrivateKey | None,
        host: Host,
        timeouts: Timeouts | None = None,
        double_sign_check_height: int = 0,
    ) -> None:
        """`double_sign_check_height` N > 0: sign nothing until N heights have been decided here without
        us (the host passes it when this validator's sign state was lost: CometBFT's check)."""
        self.chain_id = chain_id
        self.signer = signer
        self.host = host
        self.timeouts = timeouts if timeouts is not None else Timeouts()
        self._sign_state = SignState()
        self._evidence = EvidencePool()
        self._heights_to_watch = double_sign_check_height
        self._future = FutureBuffer()
        self._known_sets: dict[int, ValidatorSet] = {}  # sets of heights above ours learned from the host
        self._height = 0
        self._round = 0
        self._step = COMMIT
        self._vset: ValidatorSet | None = None
        self._last_vset: ValidatorSet | None = None
        self._last_commit: Commit | None = None
        self._last_block_id = ""
        self._last_time_ms = 0
        self._app_hash = ""
        self._last_precommits: dict[bytes, Vote] = {}  # precommits of height−1 whose signatures we checked
        self._last_votes: dict[tuple[str, int, str], list[Vote]] = {}  # height−1's log: (validator, round, type)
        self._reset_height_state()

    def _reset_height_state(self) -> None:
        """Forget the message log and guards of the previous height."""
        self._votes = HeightVoteSet(0 if self._vset is None else self._vset.total_power)
        self._proposals: dict[int, dict[str, Proposal]] = {}
        self._first_proposal: dict[int, Proposal] = {}
        self._blocks: dict[str, Block] = {}
        self._participants: dict[int, set[str]] = {}
        self._fired: set[tuple[int, str]] = set()
        self._faults: dict[str, str | None] = {}
        self._fetching: set[str] = set()
        self._decided: Block | None = None

    # -- read-only state ------------------------------------------------------------------------
    @property
    def height(self) -> int:
        return self._height

    @property
    def round(self) -> int:
        return self._round

    @property
    def step(self) -> str:
        return self._step

    @property
    def validator_set(self) -> ValidatorSet | None:
        """The set of the current height."""
        return self._vset

    @property
    def sign_state(self) -> SignState:
        return self._sign_state

    @property
    def evidence(self) -> tuple[Evidence, ...]:
        """The pending evidence: double signs seen (or gossiped) and not yet committed, oldest first."""
        return self._evidence.pending()

    @property
    def heights_to_watch(self) -> int:
        """How many more heights must be decided before this engine signs again (double_sign_check_height)."""
        return self._heights_to_watch

    def add_evidence(self, evidence: Evidence) -> bool:
        """Add a peer's evidence (its signatures and validity checked by the host) to the pending pool;
        False if it was pending already or the pool is full."""
        return self._evidence.add(evidence)

    def remove_evidence(self, evidence: tuple[Evidence, ...] | list[Evidence], *, min_height: int = 0) -> None:
        """Forget pending evidence that a block committed, and every piece below `min_height` (too old)."""
        self._evidence.remove(evidence)
        self._evidence.prune(min_height)

    @property
    def future(self) -> FutureBuffer:
        """The messages buffered for the next heights (read-only use)."""
        return self._future

    @property
    def decided(self) -> Block | None:
        """The block decided at this height, if any."""
        return self._decided

    @property
    def address(self) -> str | None:
        return None if self.signer is None else self.signer.address

    def get_known_block(self, block_id: str) -> Block | None:
        """A block of this height seen in a proposal or fetched (to serve a peer's FetchBlock), or None."""
        return self._blocks.get(block_id)

    # -- inputs ---------------------------------------------------------------------------------
    def start_height(
        self,
        *,
        height: int,
        validator_set: ValidatorSet,
        last_commit: Commit | None,
        last_block_id: str,
        last_time_ms: int,
        app_hash: str,
        now_ms: int,
        restored: SignState | None = None,
        last_validator_set: ValidatorSet | None = None,
    ) -> list[Action]:
        """Start height `height` at round 0 (or the last round signed at it, after a restart).

        `last_validator_set` is the set of height−1 (to verify proposals' last commits); when None,
        the engine uses the one it ran height−1 with, if any."""
        self._last_precommits, self._last_votes = {}, {}
        if self._vset is not None and self._height == height - 1:
            last_validator_set = last_validator_set or self._vset
            self._last_precommits = {v.signature: v for v in self._votes.get_votes(PRECOMMIT)}
            for vote in [*self._votes.get_votes(PREVOTE), *self._last_precommits.values()]:
                self._last_votes.setdefault((vote.validator, vote.round, vote.type), []).append(vote)
        self._height, self._vset, self._last_vset = height, validator_set, last_validator_set
        self._last_commit, self._last_block_id, self._last_time_ms = last_commit, last_block_id, last_time_ms
        self._app_hash = app_hash
        self._reset_height_state()
        state = restored if restored is not None else self._sign_state
        if state.height != height:
            state = SignState(height=height, signed=state.signed)  # no lock or valid value at a new height
        self._sign_state = state
        buffered = self._future.pop(height)
        self._known_sets = {h: v for h, v in self._known_sets.items() if h > height}
        actions = self._start_round(max(0, state.get_max_round(height)), now_ms)
        actions += self._check_rules(self._round, now_ms)
        for msg in buffered:
            try:
                actions += self.on_message(msg, now_ms)
            except InvalidMessage as exc:
                log.info("buffered message for height %d dropped: %s", height, exc)
        return actions

    def check_message(self, msg: Proposal | Vote) -> None:
        """The stateless checks of a peer's message, whatever its height: its shape and its signature
        (which covers the chain id); InvalidMessage if either fails."""
        try:
            if isinstance(msg, Vote):
                check_vote_shape(msg)
            elif isinstance(msg, Proposal):
                check_proposal_shape(msg)
            else:
                raise InvalidMessage(f"not a proposal or a vote: {type(msg).__name__}")
        except (AttributeError, TypeError) as exc:
            raise InvalidMessage(f"malformed message: {exc}") from None
        self._check_signature(msg)

    def on_message(self, msg: Proposal | Vote, now_ms: int, *, checked: bool = False) -> list[Action]:
        """Process a peer's proposal or vote; InvalidMessage if it is malformed, badly signed or implausible.
        `checked`: the host already ran `check_message` on it."""
        if not checked:
            self.check_message(msg)
        if msg.height > self._height + FUTURE_HEIGHTS:
            return []
        if msg.height < self._height or (msg.height == self._height and self._vset is None):
            return self._check_late_vote(msg)
        if msg.height > self._height:
            return self._buffer(msg)
        self._check_membership(msg)
        self._check_round(msg)
        if self._decided is not None:
            return self._log_vote(msg)[0] if isinstance(msg, Vote) else []  # no rule runs; a double sign is evidence
        if isinstance(msg, Vote):
            return self._on_vote(msg, now_ms)
        return self._on_proposal(msg, now_ms)

    def on_timeout(self, timeout: Timeout, now_ms: int) -> list[Action]:
        """A scheduled timeout fired: act if the engine is still where it was scheduled."""
        if self._vset is None or self._decided is not None or timeout.height != self._height:
            return []
        if timeout.round != self._round:
            return []
        actions: list[Action] = []
        if timeout.step == PROPOSE and self._step == PROPOSE:
            actions += self._prevote(None, now_ms)
        elif timeout.step == PREVOTE and self._step == PREVOTE:
            actions += self._precommit(None, now_ms)
        elif timeout.step == PRECOMMIT:
            actions += self._start_round(self._round + 1, now_ms)
        else:
            return []
        return actions + self._check_rules(self._round, now_ms)

    def on_block(self, block: Block, now_ms: int) -> list[Action]:
        """A block fetched from a peer after +2/3 precommits for it were seen."""
        _check_block(block)
        if self._decided is not None or block.height != self._height or block.id not in self._fetching:
            return []
        self._blocks.setdefault(block.id, block)
        actions: list[Action] = []
        for round in self._votes.get_rounds(PRECOMMIT):
            actions += self._check_commit(round)
            if self._decided is not None:
                break
        return actions

    def on_commit(self, block: Block, commit: Commit, now_ms: int) -> list[Action]:
        """A block of this height with its commit from a peer (catch-up): decide it if the commit verifies.

        Rule 7 without the message log: a lagging node whose vote log cannot reach +2/3 (messages lost,
        or an equivocator's votes beyond the per-validator cap) still decides what the others decided."""
        _check_block(block)
        if self._decided is not None or self._vset is None or block.height != self._height:
            return []
        if not isinstance(commit, Commit) or commit.height != self._height or commit.block_id != block.id:
            raise InvalidMessage(f"the commit is not for block {block.id} at height {self._height}")
        try:
            verify_commit(self.chain_id, commit, self._vset)
        except InvalidCommit as exc:
            raise InvalidMessage(f"commit for height {self._height}: {exc}") from None
        if not self.is_valid_block(block, commit.round):
            return []
        self._decided = block
        self._step = COMMIT
        self._heights_to_watch = max(0, self._heights_to_watch - 1)
        return [Decide(block, commit)]

    # -- message checks -------------------------------------------------------------------------
    def _check_signature(self, msg: Proposal | Vote) -> None:
        """InvalidMessage unless the signature verifies (it covers the chain id) and the pubkey is the signer's."""
        ok = (
            msg.is_signed_by_validator(self.chain_id)
            if isinstance(msg, Vote)
            else msg.is_signed_by_proposer(self.chain_id)
        )
        if not ok:
            raise InvalidMessage(f"{_describe(msg)}: bad signature (or signed for another chain, or by another key)")

    def _check_membership(self, msg: Proposal | Vote) -> None:
        """InvalidMessage unless a vote's signer is in the set and a proposal's is proposer(h, r)."""
        assert self._vset is not None
        signer = msg.validator if isinstance(msg, Vote) else msg.proposer
        if signer not in self._vset:
            raise InvalidMessage(f"{_describe(msg)}: {signer} is not a validator at height {self._height}")
        if isinstance(msg, Proposal):
            self._check_round(msg)
            expected = self._vset.proposer(msg.round)
            if msg.proposer != expected:
                raise InvalidMessage(f"{_describe(msg)}: the proposer of round {msg.round} is {expected}")

    def _check_round(self, msg: Proposal | Vote) -> None:
        """InvalidMessage if the round is implausibly far ahead of ours."""
        if msg.round > self._round + MAX_ROUND_AHEAD:
            raise InvalidMessage(f"{_describe(msg)}: round {msg.round} is implausible (we are at {self._round})")

    def learn_validator_set(self, height: int, validator_set: ValidatorSet) -> None:
        """The set of a height above ours became known (the host applied the block before it): its members'
        messages for that height are buffered too (at an epoch boundary it may hold joiners)."""
        if height > self._height:
            self._known_sets[height] = validator_set

    def is_known_validator(self, height: int, address: str) -> bool:
        """True if `address` may sign at future `height` as far as we know: a member of the current set, or
        of a set learned for a height up to `height` (sets change only at epoch boundaries)."""
        if self._vset is not None and address in self._vset:
            return True
        return any(h <= height and address in vset for h, vset in self._known_sets.items())

    def _buffer(self, msg: Proposal | Vote) -> list[Action]:
        """Keep a signed message for one of the next FUTURE_HEIGHTS heights, from a known validator, within the
        buffer's bounds (see FutureBuffer); InvalidMessage if it is refused, so it is neither remembered as
        seen nor relayed, and its signer's re-gossip reaches us once we are at its height."""
        signer = msg.validator if isinstance(msg, Vote) else msg.proposer
        if not self.is_known_validator(msg.height, signer):
            raise InvalidMessage(
                f"{_describe(msg)}: {signer} is not a validator at height {msg.height} as far as we know"
            )
        if msg.round > MAX_ROUND_AHEAD:
            raise InvalidMessage(f"{_describe(msg)}: round {msg.round} is implausible for a future height")
        refused = self._future.add(msg, signer, compute_message_bytes(msg))
        if refused is not None:
            raise InvalidMessage(f"{_describe(msg)} not buffered: {refused}")
        return []

    # -- the message log ------------------------------------------------------------------------
    def _on_vote(self, vote: Vote, now_ms: int) -> list[Action]:
        """Add a vote to the log (a conflicting one is also evidence) and run the rules."""
        actions, added = self._log_vote(vote)
        return actions + self._check_rules(vote.round, now_ms) if added else actions

    def _log_vote(self, vote: Vote) -> tuple[list[Action], bool]:
        """Add a vote to the log, a conflicting one also as evidence; the evidence actions and whether it was added."""
        votes = self._votes.get_vote_set(vote.round, vote.type)
        mine = votes.votes.get(vote.validator, [])
        if any(v.block_id == vote.block_id for v in mine):
            return [], False
        actions = self._record_evidence(mine[0], vote) if mine else []
        if len(mine) >= MAX_VOTES_PER_VALIDATOR:
            return actions, False
        assert self._vset is not None
        votes.add(vote, self._vset.power_of(vote.validator))
        self._participants.setdefault(vote.round, set()).add(vote.validator)
        return actions, True

    def _check_late_vote(self, msg: Proposal | Vote) -> list[Action]:
        """A message of a past height is not counted; but a prevote or precommit of height−1 that conflicts
        with one we hold from that height (the decided height's log) is evidence of a double sign: an
        equivocator's twin often arrives after the others decided without it."""
        if not isinstance(msg, Vote) or msg.height != self._height - 1:
            return []
        seen = self._get_late_twin(msg.validator, msg.round, msg.type, msg.block_id)
        return [] if seen is None else self._record_evidence(seen, msg)

    def _get_late_twin(self, validator: str, round: int, type: str, block_id: str | None) -> Vote | None:
        """A vote held from height−1 by `validator` for (round, type) whose block id is not `block_id`."""
        for seen in self._last_votes.get((validator, round, type), ()):
            if seen.block_id != block_id:
                return seen
        return None

    def is_late_vote_evidence(self, validator: str, round: int, type: str, block_id: str | None) -> bool:
        """True if a vote of height−1 with these fields conflicts with one held from that height (a double
        sign's twin, `_check_late_vote`); any other vote of height−1 changes nothing, so the host need not
        decode or verify it."""
        return self._get_late_twin(validator, round, type, block_id) is not None

    def _on_proposal(self, proposal: Proposal, now_ms: int) -> list[Action]:
        """Add a proposal (at most a few per round) to the log and run the rules."""
        self._add_proposal(proposal)
        return self._check_rules(proposal.round, now_ms)

    def _add_proposal(self, proposal: Proposal) -> None:
        """Log a proposal of the round's proposer; the first one of a round drives rules 1 and 2."""
        kept = self._proposals.setdefault(proposal.round, {})
        if proposal.block.id in kept or len(kept) >= MAX_PROPOSALS_PER_ROUND:
            return
        kept[proposal.block.id] = proposal
        self._blocks.setdefault(proposal.block.id, proposal.block)
        self._first_proposal.setdefault(proposal.round, proposal)
        self._participants.setdefault(proposal.round, set()).add(proposal.proposer)

    def _record_evidence(self, vote_a: Vote, vote_b: Vote) -> list[Action]:
        """Keep a double sign once per (validator, height, round, type) in the pending pool."""
        evidence = make_evidence(vote_a, vote_b)
        if evidence in self._evidence:
            return []
        if not self._evidence.add(evidence):
            log.warning("double sign %s not kept: the evidence pool is at one of its bounds", evidence.key)
            return []
        log.warning(
            "double sign by %s at height %d round %d (%s)", vote_a.validator, vote_a.height, vote_a.round, vote_a.type
        )
        return [RecordEvidence(evidence)]

    def _is_first_time(self, round: int, rule: str) -> bool:
        """True the first time `rule` asks at `round`, and marks it fired."""
        if (round, rule) in self._fired:
            return False
        self._fired.add((round, rule))
        return True

    # -- validity ---------------------------------------------------------------------------------
    def get_block_fault(self, block: Block) -> str | None:
        """Why `block` is not valid(v) against the state after h−1 (round-independent part), or None (cached)."""
        fault = self._faults.get(block.id, "")
        if fault == "":
            fault = self._compute_block_fault(block)
            self._faults[block.id] = fault
            if fault is not None:
                log.info("block %s at height %d is not valid: %s", block.id[:12], self._height, fault)
        return fault

    def _compute_block_fault(self, block: Block) -> str | None:
        """The first rule of valid(v) the block breaks, or None."""
        assert self._vset is not None
        hd = block.header
        if hd.chain_id != self.chain_id:
            return f"chain id {hd.chain_id!r} is not {self.chain_id!r}"
        if hd.height != self._height:
            return f"height {hd.height} is not {self._height}"
        if hd.last_block_id != self._last_block_id:
            return f"last block id {hd.last_block_id} is not {self._last_block_id}"
        if hd.app_hash != self._app_hash:
            return f"app hash {hd.app_hash} is not ours after h−1 ({self._app_hash})"
        if hd.validators_hash != self._vset.hash:
            return "validators hash is not the set's of this height"
        if hd.proposer not in self._vset:
            return f"proposer {hd.proposer} is not a validator"
        if hd.txs_hash != compute_txs_hash(block.txs):
            return "txs hash does not match the transactions"
        if hd.last_commit_hash != compute_commit_hash(block.last_commit):
            return "last commit hash does not match the last commit"
        fault = self._get_evidence_fault(block)
        if fault is not None:
            return fault
        fault = self._get_last_commit_fault(block.last_commit)
        if fault is not None:
            return fault
        fault = self._get_time_fault(block)
        if fault is not None:
            return fault
        try:
            return self.host.validate_block(block)
        except (ChainError, NodeError) as exc:
            return f"the application refused the block: {exc}"

    def _get_evidence_fault(self, block: Block) -> str | None:
        """Why the block's evidence is not valid on its face (hash, heights, one piece per offence), or
        None; the host checks the rest (the validator in the set of its height, signatures, age, not
        committed before: `host.validate_block`)."""
        if block.header.evidence_hash != compute_evidence_hash(block.evidence):
            return "evidence hash does not match the evidence"
        if len({e.key for e in block.evidence}) != len(block.evidence):
            return "the block holds one offence twice"
        for evidence in block.evidence:
            if evidence.height >= self._height:
                return f"evidence {evidence.key} is not from a height before {self._height}"
        return None

    def _get_last_commit_fault(self, commit: Commit | None) -> str | None:
        """Why a block's last commit does not commit block h−1 with +2/3 of the set of h−1, or None."""
        if self._height == 1:
            return None if commit is None else "a block at height 1 has no last commit"
        if commit is None:
            return "the block has no last commit"
        if commit.height != self._height - 1 or commit.block_id != self._last_block_id:
            return f"last commit is for ({commit.height}, {commit.block_id}), not the previous block"
        vset = self._last_vset
        if vset is None:
            # The set of h−1 is unknown (first height after a restart or sync): the block id is
            # already checked against our own chain; require only validly signed precommits.
            powers = [(v.validator, 1) for v in commit.precommits]
            if not powers or len({a for a, _ in powers}) != len(powers):
                return "last commit has no or duplicate precommits"
            vset = ValidatorSet.from_powers(powers)
        try:
            verify_commit(self.chain_id, commit, vset, verified=self._last_precommits)
        except InvalidCommit as exc:
            return f"last commit: {exc}"
        return None

    def _get_time_fault(self, block: Block) -> str | None:
        """Why the block's time is not its BFT time (the genesis time at height 1, else the power-weighted
        median of its last commit's precommit times) or not after the previous block's, or None."""
        time_ms = block.header.time_ms
        try:
            expected = compute_block_time(block.last_commit, self._last_vset, self._last_time_ms)
        except InvalidCommit as exc:
            return f"last commit: {exc}"
        if time_ms != expected:
            return f"time {time_ms} is not the block's BFT time {expected}"
        if self._height > 1 and time_ms <= self._last_time_ms:
            return f"time {time_ms} is not after the previous block's {self._last_time_ms}"
        return None

    def is_valid_block(self, block: Block, round: int) -> bool:
        """valid(v) at round `round`: the round-independent checks and a header proposer of some round ≤ `round`."""
        if self.get_block_fault(block) is not None:
            return False
        assert self._vset is not None
        return any(self._vset.proposer(r) == block.header.proposer for r in range(round + 1))

    # -- the rules --------------------------------------------------------------------------------
    def _check_rules(self, touched_round: int, now_ms: int) -> list[Action]:
        """Fire every rule the log now enables, until nothing changes."""
        actions: list[Action] = []
        while True:
            before = (self._round, self._step, len(actions))
            for round in sorted({touched_round, self._round}):
                actions += self._check_commit(round)
            if self._decided is not None:
                return actions
            if touched_round > self._round:
                actions += self._check_round_skip(touched_round, now_ms)
            actions += self._check_round_rules(now_ms)
            if (self._round, self._step, len(actions)) == before:
                return actions

    def _check_commit(self, round: int) -> list[Action]:
        """Rule 7: +2/3 precommits for id(v) at any round: commit v if we have it and it is valid, else fetch it."""
        if self._decided is not None:
            return []
        for block_id in self._votes.get_quorum_blocks(round, PRECOMMIT):
            block = self._blocks.get(block_id)
            if block is None:
                if block_id not in self._fetching:
                    self._fetching.add(block_id)
                    return [FetchBlock(self._height, block_id)]
                continue
            if self.is_valid_block(block, round):
                return self._decide(block, round)
        return []

    def _decide(self, block: Block, round: int) -> list[Action]:
        """Commit `block` with the +2/3 precommits of `round`."""
        votes = self._votes.get_vote_set(round, PRECOMMIT).by_block[block.id]
        precommits = tuple(votes[a] for a in sorted(votes))
        commit = Commit(self._height, round, block.id, precommits)
        self._decided = block
        self._step = COMMIT
        self._heights_to_watch = max(0, self._heights_to_watch - 1)
        log.debug("height %d decided %s at round %d", self._height, block.id[:12], round)
        return [Decide(block, commit)]

    def _check_round_skip(self, round: int, now_ms: int) -> list[Action]:
        """Rule 8: messages from +1/3 of the power at a higher round: start that round."""
        assert self._vset is not None
        power = sum(self._vset.power_of(a) for a in self._participants.get(round, ()))
        if is_one_third(power, self._vset.total_power):
            return self._start_round(round, now_ms)
        return []

    def _check_round_rules(self, now_ms: int) -> list[Action]:
        """Rules 1–6 for the current round."""
        r = self._round
        actions: list[Action] = []
        proposal = self._first_proposal.get(r)
        if self._step == PROPOSE and proposal is not None:
            actions += self._check_proposal_prevote(proposal, now_ms)
        if (
            self._step == PREVOTE
            and self._votes.has_any_quorum(r, PREVOTE)
            and self._is_first_time(r, "timeout_prevote")
        ):
            actions.append(self._schedule(PREVOTE))  # rule 3
        if self._step in (PREVOTE, PRECOMMIT):
            actions += self._check_polka(now_ms)  # rule 4
        if self._step == PREVOTE and self._votes.has_quorum(r, PREVOTE, None):
            actions += self._precommit(None, now_ms)  # rule 5
        if self._votes.has_any_quorum(r, PRECOMMIT) and self._is_first_time(r, "timeout_precommit"):
            actions.append(self._schedule(PRECOMMIT))  # rule 6
        return actions

    def _check_proposal_prevote(self, proposal: Proposal, now_ms: int) -> list[Action]:
        """Rules 1 and 2: prevote the round's proposal if valid and the lock allows it, else nil."""
        r, block = self._round, proposal.block
        state = self._sign_state
        if proposal.pol_round == -1:
            allowed = state.locked_round == -1 or _block_id(state.locked_block) == block.id
        elif self._votes.has_quorum(proposal.pol_round, PREVOTE, block.id):
            allowed = state.locked_round <= proposal.pol_round or _block_id(state.locked_block) == block.id
        else:
            return []  # rule 2 waits for the proof of lock (or timeoutPropose)
        return self._prevote(block.id if allowed and self.is_valid_block(block, r) else None, now_ms)

    def _check_polka(self, now_ms: int) -> list[Action]:
        """Rule 4: a proposal of this round with +2/3 prevotes for it: lock and precommit (at prevote), set valid."""
        r = self._round
        for block_id in self._votes.get_quorum_blocks(r, PREVOTE):
            proposal = self._proposals.get(r, {}).get(block_id)
            if proposal is None or not self.is_valid_block(proposal.block, r):
                continue
            if not self._is_first_time(r, "polka"):
                return []
            block = proposal.block
            proof = self._votes.get_vote_set(r, PREVOTE).by_block[block_id]
            votes = tuple(proof[a] for a in sorted(proof))
            self._sign_state = replace(self._sign_state, valid_round=r, valid_block=block, valid_votes=votes)
            if self._step == PREVOTE:
                self._sign_state = replace(self._sign_state, locked_round=r, locked_block=block)
                return self._precommit(block_id, now_ms) or [Persist(self._sign_state)]
            return [Persist(self._sign_state)]
        return []

    # -- steps --------------------------------------------------------------------------------
    def _schedule(self, step: str) -> ScheduleTimeout:
        """The timeout of `step` for the current round."""
        return ScheduleTimeout(Timeout(self._height, self._round, step), self.timeouts.get_delay(step, self._round))

    def _start_round(self, round: int, now_ms: int) -> list[Action]:
        """StartRound(r): step propose; the proposer proposes validValue or a new block, others wait timeoutPropose."""
        self._round, self._step = round, PROPOSE
        assert self._vset is not None
        if self.address is not None and self._vset.proposer(round) == self.address:
            actions = self._propose(now_ms)
            if actions:
                return actions
        return [self._schedule(PROPOSE)]

    def _propose(self, now_ms: int) -> list[Action]:
        """Sign and broadcast PROPOSAL(h, r, v, validRound), a re-proposal with its proof of lock (the +2/3
        prevotes of validRound, kept in the sign state): a validator that missed that round (it was
        syncing, partitioned or down) can accept v only with them, and no peer re-sends old rounds'
        votes, so without them two locked validators and one that missed the lock wait forever.
        [] if the sign state refuses."""
        assert self.signer is not None
        if self._is_watching():
            return []
        state = self._sign_state
        if state.valid_block is not None and state.valid_round < self._round:
            block, pol_round, proof = state.valid_block, state.valid_round, state.valid_votes
        elif state.valid_block is not None:  # restarted inside the round whose polka its own proposal had:
            block, pol_round, proof = state.valid_block, -1, ()  # the same block again (a POL round is < r)
        else:
            block, pol_round, proof = self._make_block(now_ms), -1, ()
        try:
            state.check_sign(self._height, self._round, PROPOSE, block.id)
        except DoubleSignRefused as exc:
            log.warning("%s", exc)
            return []
        proposal = sign_proposal(self.signer, self.chain_id, self._height, self._round, pol_round, block, now_ms)
        self._sign_state = state.with_signed(self._height, self._round, PROPOSE, block.id)
        self._add_proposal(proposal)
        return [Persist(self._sign_state), Broadcast(proposal, proof)]

    def _make_block(self, now_ms: int) -> Block:
        """A new block at this height from the host's pending evidence and transactions."""
        assert self._vset is not None and self.address is not None
        selected, invalid = self.host.select_evidence(self._height, self._evidence.pending())
        self._evidence.remove(invalid)
        evidence = tuple(selected[:MAX_DECODED_BLOCK_EVIDENCE])
        txs = compute_capped_txs(list(self.host.reap_txs(self._height, evidence)))
        header = Header(
            chain_id=self.chain_id,
            height=self._height,
            time_ms=compute_block_time(self._last_commit, self._last_vset, self._last_time_ms),
            last_block_id=self._last_block_id,
            last_commit_hash=compute_commit_hash(self._last_commit),
            txs_hash=compute_txs_hash(txs),
            app_hash=self._app_hash,
            validators_hash=self._vset.hash,
            proposer=self.address,
            evidence_hash=compute_evidence_hash(evidence),
        )
        return Block(header, txs, self._last_commit, evidence)

    def _prevote(self, block_id: str | None, now_ms: int) -> list[Action]:
        """Prevote `block_id` (None: nil) and move to the prevote step."""
        self._step = PREVOTE
        return self._vote(PREVOTE, block_id, now_ms)

    def _precommit(self, block_id: str | None, now_ms: int) -> list[Action]:
        """Precommit `block_id` (None: nil) and move to the precommit step."""
        self._step = PRECOMMIT
        return self._vote(PRECOMMIT, block_id, now_ms)

    def _vote_time(self, block_id: str | None, now_ms: int) -> int:
        """Our vote's timestamp: now, but after the previous block's time and after the time of the block
        voted for (as CometBFT's voteTime), so the BFT time of the next block (the weighted median of
        the commit's precommit times) is after this block's."""
        time_ms = max(now_ms, self._last_time_ms + 1)
        block = self._blocks.get(block_id) if block_id is not None else None
        return time_ms if block is None else max(time_ms, block.header.time_ms + 1)

    def _vote(self, type: str, block_id: str | None, now_ms: int) -> list[Action]:
        """Sign, persist, broadcast and log our own vote; [] if we are not a validator or the sign state refuses.

        A vote of this (height, round, type) signed before a restart is cast again as it was, for its
        block, whatever the engine would choose now: it is no new statement, and without it the peers
        that never received it may wait for it forever (with a third of the power jailed or down, the
        rest need every vote to leave the round)."""
        assert self._vset is not None
        if self.signer is None or self.signer.address not in self._vset or self._is_watching():
            return []
        signed = self._sign_state.get_signed(type)
        if (
            signed is not None
            and (signed.height, signed.round) == (self._height, self._round)
            and signed.block_id != block_id
        ):
            log.warning(
                "casting again the %s for %s at (%d, %d) signed before a restart, not one for %s",
                type,
                signed.block_id,
                self._height,
                self._round,
                block_id,
            )
            block_id = signed.block_id
        try:
            self._sign_state.check_sign(self._height, self._round, type, block_id)
        except DoubleSignRefused as exc:
            log.warning("%s", exc)
            return []
        vote = sign_vote(
            self.signer, self.chain_id, type, self._height, self._round, block_id, self._vote_time(block_id, now_ms)
        )
        self._sign_state = self._sign_state.with_signed(self._height, self._round, type, block_id)
        votes = self._votes.get_vote_set(self._round, type)
        if not any(v.block_id == block_id for v in votes.votes.get(vote.validator, [])):
            votes.add(vote, self._vset.power_of(vote.validator))
            self._participants.setdefault(self._round, set()).add(vote.validator)
        return [Persist(self._sign_state), Broadcast(vote)]

    def _is_watching(self) -> bool:
        """True while double_sign_check_height forbids signing (logged once per height)."""
        if self._heights_to_watch <= 0:
            return False
        if self._is_first_time(-1, "watching"):
            log.warning(
                "not signing at height %d: the sign state was missing at start; %d more height(s) to watch",
                self._height,
                self._heights_to_watch,
            )
        return True


def compute_message_bytes(msg: Proposal | Vote) -> int:
    """What a message counts against the future buffer's byte budgets: about its encoded size."""
    if isinstance(msg, Vote):
        return VOTE_BYTES
    commit = msg.block.last_commit
    return (
        PROPOSAL_BYTES + msg.block.size + 8 * len(msg.block.txs) + VOTE_BYTES * len(commit.precommits if commit else ())
    )


class FutureBuffer:
    """Signed messages of known validators for the next heights, bounded per height (MAX_FUTURE_MESSAGES,
    MAX_FUTURE_BYTES), per signer and height (MAX_FUTURE_SIGNER_BYTES) and per (height, signer, round,
    type) (MAX_FUTURE_PER_SLOT), so one validator cannot crowd the others out."""

    def __init__(self) -> None:
        self._messages: dict[int, dict[bytes, Proposal | Vote]] = {}  # height -> signature -> message
        self._bytes: dict[int, int] = {}  # height -> bytes
        self._signer_bytes: dict[tuple[int, str], int] = {}
        self._slots: dict[tuple[int, str, int, str], int] = {}

    def add(self, msg: Proposal | Vote, signer: str, size: int) -> str | None:
        """Keep `msg` (a duplicate is no error); the bound it would break if refused, else None."""
        height = msg.height
        kept = self._messages.setdefault(height, {})
        if msg.signature in kept:
            return None
        slot = (height, signer, msg.round, msg.type if isinstance(msg, Vote) else "proposal")
        if self._slots.get(slot, 0) >= MAX_FUTURE_PER_SLOT:
            return f"{MAX_FUTURE_PER_SLOT} messages of this signer, round and type are buffered already"
        if len(kept) >= MAX_FUTURE_MESSAGES:
            return f"{MAX_FUTURE_MESSAGES} messages for height {height} are buffered already"
        if self._bytes.get(height, 0) + size > MAX_FUTURE_BYTES:
            return f"the buffer for height {height} is full ({MAX_FUTURE_BYTES} bytes)"
        if self._signer_bytes.get((height, signer), 0) + size > MAX_FUTURE_SIGNER_BYTES:
            return f"this signer's share of the buffer for height {height} is full ({MAX_FUTURE_SIGNER_BYTES} bytes)"
        kept[msg.signature] = msg
        self._bytes[height] = self._bytes.get(height, 0) + size
        self._signer_bytes[(height, signer)] = self._signer_bytes.get((height, signer), 0) + size
        self._slots[slot] = self._slots.get(slot, 0) + 1
        return None

    def pop(self, height: int) -> list[Proposal | Vote]:
        """The messages buffered for `height`, in arrival order; forget them and those of lower heights."""
        out = list(self._messages.get(height, {}).values())
        self._messages = {h: m for h, m in self._messages.items() if h > height}
        self._bytes = {h: b for h, b in self._bytes.items() if h > height}
        self._signer_bytes = {k: b for k, b in self._signer_bytes.items() if k[0] > height}
        self._slots = {k: n for k, n in self._slots.items() if k[0] > height}
        return out

    def get_bytes(self, height: int) -> int:
        """The bytes buffered for `height`."""
        return self._bytes.get(height, 0)

    def count(self, height: int) -> int:
        """The messages buffered for `height`."""
        return len(self._messages.get(height, {}))


def _check_block(block: Block) -> None:
    """InvalidMessage unless a peer's block is well-formed and its body matches its header's hashes."""
    try:
        check_block_shape(block)
        check_block_hashes(block)
    except (AttributeError, TypeError) as exc:
        raise InvalidMessage(f"malformed block: {exc}") from None


def _block_id(block: Block | None) -> str | None:
    """The id of a block, None for none."""
    return None if block is None else block.id


def _describe(msg: Proposal | Vote) -> str:
    """A short description of a message for errors and logs."""
    if isinstance(msg, Vote):
        return f"{msg.type} of {msg.validator} at ({msg.height}, {msg.round})"
    return f"proposal of {msg.proposer} at ({msg.height}, {msg.round})"
