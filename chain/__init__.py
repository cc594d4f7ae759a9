"""uoc's deterministic state machine: integers only, no I/O beyond the `Store` it is given."""

from .app import Application, BlockResult, TxResult
from .crypto import PrivateKey, compute_address
from .errors import ChainError, InvalidBlock, InvalidGenesis, InvalidTx, MoneyError, StoreError
from .governance import Tally, compute_tally, compute_tally_outcome
from .median import weighted_median
from .money import to_ngonka
from .store import MemoryStore, Store
from .tx import (
    MsgBond,
    MsgDeposit,
    MsgSend,
    MsgSubmitPriceProposal,
    MsgSubmitProposal,
    MsgUnbond,
    MsgVote,
    RegisterModel,
    RemoveModel,
    Tx,
    decode_tx,
    sign_tx,
)

__all__ = [
    "Application",
    "BlockResult",
    "ChainError",
    "InvalidBlock",
    "InvalidGenesis",
    "InvalidTx",
    "MemoryStore",
    "MoneyError",
    "MsgBond",
    "MsgDeposit",
    "MsgSend",
    "MsgSubmitPriceProposal",
    "MsgSubmitProposal",
    "MsgUnbond",
    "MsgVote",
    "PrivateKey",
    "RegisterModel",
    "RemoveModel",
    "Store",
    "StoreError",
    "Tally",
    "Tx",
    "TxResult",
    "compute_address",
    "compute_tally",
    "compute_tally_outcome",
    "decode_tx",
    "sign_tx",
    "to_ngonka",
    "weighted_median",
]
