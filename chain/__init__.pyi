"""The re-exports of `chain` for type checkers; `chain/__init__.py` loads each on first use (lazy_loader)."""

from .app import Application, BlockResult, TxResult
from .crypto import PrivateKey, compute_address
from .epochs import (
    compute_effective_epoch,
    compute_epoch_at_height,
    compute_epoch_start_height,
    is_epoch_end,
)
from .errors import (
    ChainError,
    InvalidBlock,
    InvalidGenesis,
    InvalidTx,
    MoneyError,
    StoreError,
)
from .fields import FieldError
from .governance import Tally, compute_tally, compute_tally_outcome
from .median import weighted_median
from .money import to_ngonka
from .params import (
    DEFAULT_PARAMS,
    ParamInfo,
    Params,
    describe_params,
)
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
    "DEFAULT_PARAMS",
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
    "ParamInfo",
    "Params",
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
    "compute_effective_epoch",
    "compute_epoch_at_height",
    "compute_epoch_start_height",
    "compute_tally",
    "compute_tally_outcome",
    "decode_tx",
    "describe_params",
    "is_epoch_end",
    "run_query",
    "sign_tx",
    "to_ngonka",
    "weighted_median",
]
