"""The exception tree of the `chain` package: every invalid input raises one of these."""

from __future__ import annotations

from typing import Any


class ChainError(Exception):
    """Base class of every error the state machine raises on invalid input."""

    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with the code (errors cross process boundaries in batch admission)."""
        return (type(self), (str(self),), {**self.__dict__, "code": self.code})


class MoneyError(ChainError, ValueError):
    """An amount, price or denomination that SPEC §1 does not accept."""

    code = "invalid_amount"


class InvalidTx(ChainError):
    """A transaction or message that cannot be applied; `code` names the rule it broke."""

    code = "invalid_tx"
    tx_hash = ""  # set when the transaction decoded far enough to have a hash


class InvalidGenesis(ChainError, ValueError):
    """A genesis document that cannot start a chain."""

    code = "invalid_genesis"


class InvalidBlock(ChainError):
    """A block that does not follow the last committed one."""

    code = "invalid_block"


class InvalidEvidence(ChainError):
    """Double-sign evidence that the state machine refuses; `code` names the rule it broke."""

    code = "invalid_evidence"


class StoreError(ChainError):
    """A storage problem: a missing, corrupt or mismatched state store."""

    code = "store"
