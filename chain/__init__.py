"""uoc's deterministic state machine: integers only, no I/O beyond the `Store` it is given."""

from .app import Application, BlockResult, TxResult
from .crypto import PrivateKey, compute_address
from .errors import ChainError, InvalidBlock, InvalidGenesis, InvalidTx, MoneyError, StoreError
from .median import weighted_median
from .money import to_ngonka
from .store import MemoryStore, Store
from .tx import MsgBond, MsgSend, MsgSubmitPriceProposal, MsgUnbond, Tx, decode_tx, sign_tx

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
    "MsgSend",
    "MsgSubmitPriceProposal",
    "MsgUnbond",
    "PrivateKey",
    "Store",
    "StoreError",
    "Tx",
    "TxResult",
    "compute_address",
    "decode_tx",
    "sign_tx",
    "to_ngonka",
    "weighted_median",
]
