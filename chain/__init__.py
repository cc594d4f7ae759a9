"""uoc's deterministic state machine: integers only, no I/O beyond the `Store` it is given."""

from .app import Application, BlockResult, TxResult
from .crypto import PrivateKey, compute_address
from .errors import ChainError, InvalidBlock, InvalidGenesis, InvalidTx, MoneyError, StoreError
from .fields import FieldError
from .governance import Tally, compute_tally, compute_tally_outcome
from .median import weighted_median
from .money import to_ngonka
from .queries import Query, run_query
from .store import MemoryStore, Store
from .tx import (
    Content,
    Msg,
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
    "Content",
    "FieldError",
    "InvalidBlock",
    "InvalidGenesis",
    "InvalidTx",
    "MemoryStore",
    "MoneyError",
    "Msg",
    "MsgBond",
    "MsgDeposit",
    "MsgSend",
    "MsgSubmitPriceProposal",
    "MsgSubmitProposal",
    "MsgUnbond",
    "MsgVote",
    "PrivateKey",
    "Query",
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
    "run_query",
    "sign_tx",
    "to_ngonka",
    "weighted_median",
]
