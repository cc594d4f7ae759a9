"""The round steps of Tendermint (propose, prevote, precommit, commit) and their timeouts."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConsensusError

PROPOSE, PREVOTE, PRECOMMIT, COMMIT = "propose", "prevote", "precommit", "commit"
SIGN_STEPS = (PROPOSE, PREVOTE, PRECOMMIT)


@dataclass(frozen=True)
class Timeouts:
    """Round timeouts (base + delta·round, in ms); commit_ms is the block interval."""

    propose_ms: int = 3000
    propose_delta_ms: int = 500
    prevote_ms: int = 1000
    prevote_delta_ms: int = 500
    precommit_ms: int = 1000
    precommit_delta_ms: int = 500
    commit_ms: int = 1000

    def get_delay(self, step: str, round: int) -> int:
        """The delay of timeout `step` in round `round`: it grows linearly with the round."""
        if step == PROPOSE:
            return self.propose_ms + self.propose_delta_ms * round
        if step == PREVOTE:
            return self.prevote_ms + self.prevote_delta_ms * round
        if step == PRECOMMIT:
            return self.precommit_ms + self.precommit_delta_ms * round
        if step == COMMIT:
            return self.commit_ms
        raise ConsensusError(f"unknown timeout step {step!r}")


@dataclass(frozen=True)
class Timeout:
    """A timeout the engine asked for: it fires `on_timeout` for (height, round, step)."""

    height: int
    round: int
    step: str
