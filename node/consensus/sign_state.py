"""What a validator must remember across a crash to never double-sign: its last signature per step and its lock."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..blocks import Block, Vote
from ..errors import DoubleSignRefused, InvalidMessage
from .steps import SIGN_STEPS


@dataclass(frozen=True)
class SignedRecord:
    """The last signature of one step: (height, round, block id)."""

    step: str
    height: int
    round: int
    block_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "height": self.height, "round": self.round, "block_id": self.block_id}


@dataclass(frozen=True)
class SignState:
    """What must survive a crash: the last signature per step and the lock/valid values of `height`."""

    height: int = 0
    signed: tuple[SignedRecord, ...] = ()
    locked_round: int = -1
    locked_block: Block | None = None
    valid_round: int = -1
    valid_block: Block | None = None
    valid_votes: tuple[Vote, ...] = ()  # the +2/3 prevotes of valid_round for valid_block (its proof of lock)

    def get_signed(self, step: str) -> SignedRecord | None:
        """The last signature of `step`, if any."""
        for record in self.signed:
            if record.step == step:
                return record
        return None

    def check_sign(self, height: int, round: int, step: str, block_id: str | None) -> None:
        """Raise DoubleSignRefused if signing `block_id` at (height, round, step) could conflict with a past one."""
        record = self.get_signed(step)
        if record is None:
            return
        if (height, round) < (record.height, record.round):
            raise DoubleSignRefused(
                f"refusing to sign a {step} at ({height}, {round}): "
                f"already signed one at ({record.height}, {record.round})"
            )
        if (height, round) == (record.height, record.round) and block_id != record.block_id:
            raise DoubleSignRefused(
                f"refusing to sign a {step} for {block_id} at ({height}, {round}): already signed {record.block_id}"
            )

    def with_signed(self, height: int, round: int, step: str, block_id: str | None) -> SignState:
        """This state after signing `block_id` at (height, round, step)."""
        records = [r for r in self.signed if r.step != step] + [SignedRecord(step, height, round, block_id)]
        return replace(self, signed=tuple(sorted(records, key=lambda r: SIGN_STEPS.index(r.step))))

    def get_max_round(self, height: int) -> int:
        """The highest round signed at `height`, −1 if none."""
        return max((r.round for r in self.signed if r.height == height), default=-1)

    def is_valid_block_locked(self) -> bool:
        """True if the valid block is the locked block (the usual case: a lock sets both)."""
        return (
            self.valid_block is not None
            and self.locked_block is not None
            and self.valid_block.id == self.locked_block.id
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON of the file: a valid block that is the locked block is written once (`valid_block_is_locked`)."""
        same = self.is_valid_block_locked()
        return {
            "height": self.height,
            "signed": [r.to_json() for r in self.signed],
            "locked_round": self.locked_round,
            "locked_block": None if self.locked_block is None else self.locked_block.to_json(),
            "valid_round": self.valid_round,
            "valid_block": None if self.valid_block is None or same else self.valid_block.to_json(),
            "valid_block_is_locked": same,
            "valid_votes": [v.to_json() for v in self.valid_votes],
        }

    @classmethod
    def from_json(cls, obj: Any) -> SignState:
        """The state from to_json(); InvalidMessage on a bad shape."""
        try:
            records = tuple(
                SignedRecord(r["step"], r["height"], r["round"], r["block_id"]) for r in obj.get("signed", [])
            )
            locked = None if obj["locked_block"] is None else Block.from_json(obj["locked_block"])
            valid = None if obj["valid_block"] is None else Block.from_json(obj["valid_block"])
            same = obj.get("valid_block_is_locked", False)  # absent in the files of earlier versions
            if type(same) is not bool or (same and (locked is None or valid is not None)):
                raise InvalidMessage(
                    "a sign state's valid_block_is_locked is true only with a locked block and no valid_block"
                )
            state = cls(
                height=obj["height"],
                signed=records,
                locked_round=obj["locked_round"],
                locked_block=locked,
                valid_round=obj["valid_round"],
                valid_block=locked if same else valid,
                valid_votes=tuple(Vote.from_json(v) for v in obj.get("valid_votes", [])),
            )
        except (TypeError, KeyError, AttributeError):
            raise InvalidMessage("a sign state is {height, signed, locked_round, locked_block, …}") from None
        ints = [state.height, state.locked_round, state.valid_round] + [x for r in records for x in (r.height, r.round)]
        if any(type(i) is not int for i in ints) or any(r.step not in SIGN_STEPS for r in records):
            raise InvalidMessage("a sign state has integer heights and rounds and known steps")
        return state
