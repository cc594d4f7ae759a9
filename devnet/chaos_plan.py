"""The plan of a chaos run: its configuration and the seeded order, targets and sizes of its faults."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .adversary_plan import ATTACK_KINDS

FAULT_KINDS = ("kill", "pause", "wipe", "partition", "loss", "delay")
RESTART_KINDS = ("kill", "wipe")
HOLD_S = (2.0, 5.0)  # how long a fault is held
PAUSE_HOLD_S = (5.0, 10.0)  # a long pause: the peers' calls to the node time out and back off


@dataclass(frozen=True)
class ChaosConfig:
    """What a chaos run does: network size, seed, length, chain timing, the fabric, and the adversaries."""

    validators: int = 4
    seed: int = 1
    duration_s: float = 120.0
    epoch_length: int = 5
    block_ms: int = 500
    fabric: str = "auto"
    faults: bool = True
    byzantine: int = 0  # validators run as adversaries (devnet/adversary.py); 3 * byzantine < validators
    attacks: tuple[str, ...] = ATTACK_KINDS


@dataclass(frozen=True)
class Fault:
    """One fault: its kind, the nodes it hits (a partition's first group), how long it is held, and its size."""

    kind: str
    targets: tuple[int, ...]
    hold_s: float
    loss: float = 0.0
    delay_ms: int = 0
    jitter_ms: int = 0

    def describe(self) -> str:
        """One line: the kind, targets and size."""
        nodes = ",".join(f"n{i}" for i in self.targets)
        extra = {"loss": f" p={self.loss:.2f}", "delay": f" {self.delay_ms}±{self.jitter_ms} ms"}.get(self.kind, "")
        return f"{self.kind} {nodes}{extra} for {self.hold_s:.1f} s"


def compute_fault(rng: random.Random, kind: str, validators: int) -> Fault:
    """A fault of `kind`, seeded: one node for process faults, one or two for loss and delay, a minority cut off."""
    nodes = list(range(validators))
    hold = round(rng.uniform(*(PAUSE_HOLD_S if kind == "pause" else HOLD_S)), 1)
    if kind in ("kill", "pause", "wipe"):
        return Fault(kind, (rng.choice(nodes),), hold)
    if kind == "partition":
        rng.shuffle(nodes)
        return Fault(kind, tuple(sorted(nodes[: rng.randint(1, validators // 2)])), hold)
    targets = tuple(sorted(rng.sample(nodes, rng.randint(1, 2))))
    if kind == "loss":
        return Fault(kind, targets, hold, loss=round(rng.uniform(0.1, 0.4), 2))
    return Fault(kind, targets, hold, delay_ms=rng.randint(100, 300), jitter_ms=rng.randint(20, 80))


def compute_fault_plan(seed: int, validators: int, count: int) -> list[Fault]:
    """The run's faults in order: rounds of every kind once, in a seeded order, with seeded targets and sizes."""
    rng = random.Random(seed)
    plan: list[Fault] = []
    while len(plan) < count:
        kinds = list(FAULT_KINDS)
        rng.shuffle(kinds)
        plan.extend(compute_fault(rng, kind, validators) for kind in kinds)
    return plan[:count]
