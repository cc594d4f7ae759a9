"""The plan of a byzantine node in a chaos run: which validators lie, and the seeded schedule of their attacks.

Pure: the same seed gives the same adversaries and the same windows, whatever the machine or the timing.
A window switches one to three attack kinds on for `hold_s` seconds from `start_s` (seconds from the
run's start); windows come in rounds that hold each kind once, in a seeded order, with a gap between
windows. What each kind does is in `devnet/adversary.py` and docs/reliability.md.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

ATTACK_KINDS = (
    "equivocate",  # two proposals, conflicting prevotes and precommits, to different halves of the peers
    "time_future",  # own new proposals re-signed with a block time far in the future
    "time_past",  # own new proposals re-signed with a block time far in the past
    "tamper_relay",  # proposals relayed with their transactions swapped
    "flood_txs",  # BroadcastTxs calls of MAX_BATCH_TXS junk entries to every peer
    "flood_future",  # signed votes for heights h+1 and h+2 to fill the peers' future buffers
    "pad",  # own and relayed messages padded with unknown protobuf fields
    "lie_height",  # Status says height 2^62; GetBlocks stalls until the caller's deadline
    "withhold",  # own prevotes and precommits never sent
    "replay",  # old consensus messages and committed transactions sent again
)
WINDOW_KINDS = (1, 3)  # kinds on at once
WINDOW_HOLD_S = (3.0, 8.0)
WINDOW_GAP_S = (1.0, 3.0)
FIRST_WINDOW_S = 5.0  # the first window opens this long after the start (the network settles first)


@dataclass(frozen=True)
class AttackWindow:
    """Attack kinds switched on together, from `start_s` for `hold_s` seconds (seconds from the run's start)."""

    kinds: tuple[str, ...]
    start_s: float
    hold_s: float

    @property
    def end_s(self) -> float:
        """When the window closes."""
        return self.start_s + self.hold_s

    def describe(self) -> str:
        """One line: the kinds and the time span."""
        return f"{'+'.join(self.kinds)} from {self.start_s:.1f} s for {self.hold_s:.1f} s"


def is_byzantine_count_allowed(byzantine: int, validators: int) -> bool:
    """True if `byzantine` of `validators` equal-power validators stay below a third of the power (3K < N)."""
    return 0 <= byzantine and 3 * byzantine < validators


def compute_adversaries(seed: int, validators: int, byzantine: int) -> tuple[int, ...]:
    """The indices of the byzantine validators, seeded, sorted."""
    rng = random.Random(f"adversaries/{seed}")
    return tuple(sorted(rng.sample(range(validators), byzantine)))


def compute_attack_seed(seed: int, index: int) -> int:
    """The seed of the adversary running validator `index` in a run of seed `seed`."""
    return seed * 1_000 + index


def compute_attack_plan(seed: int, until_s: float, kinds: tuple[str, ...] = ATTACK_KINDS) -> list[AttackWindow]:
    """The windows of an adversary that end by `until_s`: rounds of each kind once in a seeded order, cut into
    windows of one to three kinds, with seeded holds and gaps."""
    rng = random.Random(f"attacks/{seed}")
    plan: list[AttackWindow] = []
    t = FIRST_WINDOW_S
    while kinds:
        order = list(kinds)
        rng.shuffle(order)
        while order:
            take = min(len(order), rng.randint(*WINDOW_KINDS))
            window = AttackWindow(tuple(sorted(order[:take])), round(t, 1), round(rng.uniform(*WINDOW_HOLD_S), 1))
            if window.end_s > until_s:
                return plan
            plan.append(window)
            del order[:take]
            t = window.end_s + rng.uniform(*WINDOW_GAP_S)
    return plan


def get_active_kinds(plan: list[AttackWindow], t_s: float) -> frozenset[str]:
    """The kinds switched on at `t_s` seconds from the run's start."""
    return frozenset(k for w in plan if w.start_s <= t_s < w.end_s for k in w.kinds)


def parse_attack_kinds(text: str) -> tuple[str, ...]:
    """A comma-separated list of attack kinds ("all" for every kind); ValueError naming an unknown one."""
    if text.strip() == "all":
        return ATTACK_KINDS
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in ATTACK_KINDS]
    if unknown or not kinds:
        bad = unknown[0] if unknown else text
        raise ValueError(f"unknown attack kind {bad!r}: use all or some of {','.join(ATTACK_KINDS)}")
    return tuple(k for k in ATTACK_KINDS if k in kinds)
