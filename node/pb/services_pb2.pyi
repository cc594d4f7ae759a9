from node.pb import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TxAck(_message.Message):
    __slots__ = ("hash", "accepted")
    HASH_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    hash: str
    accepted: bool
    def __init__(self, hash: _Optional[str] = ..., accepted: _Optional[bool] = ...) -> None: ...

class TxBatch(_message.Message):
    __slots__ = ("txs",)
    TXS_FIELD_NUMBER: _ClassVar[int]
    txs: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, txs: _Optional[_Iterable[bytes]] = ...) -> None: ...

class TxBatchAck(_message.Message):
    __slots__ = ("acks", "errors")
    ACKS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[TxAck]
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, acks: _Optional[_Iterable[_Union[TxAck, _Mapping]]] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("relayed",)
    RELAYED_FIELD_NUMBER: _ClassVar[int]
    relayed: bool
    def __init__(self, relayed: _Optional[bool] = ...) -> None: ...

class BlockRange(_message.Message):
    __slots__ = ("from_height", "to_height")
    FROM_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TO_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    from_height: int
    to_height: int
    def __init__(self, from_height: _Optional[int] = ..., to_height: _Optional[int] = ...) -> None: ...

class GetBlockRequest(_message.Message):
    __slots__ = ("height", "block_id")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    height: int
    block_id: str
    def __init__(self, height: _Optional[int] = ..., block_id: _Optional[str] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("chain_id", "height", "app_hash", "latest_block_id", "node_id", "moniker", "catching_up", "evidence_count", "round", "mempool_size", "validator_address", "peers", "configured_peers", "epoch", "unit_of_compute_price")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    APP_HASH_FIELD_NUMBER: _ClassVar[int]
    LATEST_BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    MONIKER_FIELD_NUMBER: _ClassVar[int]
    CATCHING_UP_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    MEMPOOL_SIZE_FIELD_NUMBER: _ClassVar[int]
    VALIDATOR_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    CONFIGURED_PEERS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    UNIT_OF_COMPUTE_PRICE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    height: int
    app_hash: str
    latest_block_id: str
    node_id: str
    moniker: str
    catching_up: bool
    evidence_count: int
    round: int
    mempool_size: int
    validator_address: str
    peers: int
    configured_peers: int
    epoch: int
    unit_of_compute_price: int
    def __init__(self, chain_id: _Optional[str] = ..., height: _Optional[int] = ..., app_hash: _Optional[str] = ..., latest_block_id: _Optional[str] = ..., node_id: _Optional[str] = ..., moniker: _Optional[str] = ..., catching_up: _Optional[bool] = ..., evidence_count: _Optional[int] = ..., round: _Optional[int] = ..., mempool_size: _Optional[int] = ..., validator_address: _Optional[str] = ..., peers: _Optional[int] = ..., configured_peers: _Optional[int] = ..., epoch: _Optional[int] = ..., unit_of_compute_price: _Optional[int] = ...) -> None: ...

class EvidenceRequest(_message.Message):
    __slots__ = ("from_height",)
    FROM_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    from_height: int
    def __init__(self, from_height: _Optional[int] = ...) -> None: ...

class EvidenceList(_message.Message):
    __slots__ = ("evidence",)
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    evidence: _containers.RepeatedCompositeFieldContainer[_types_pb2.Evidence]
    def __init__(self, evidence: _Optional[_Iterable[_Union[_types_pb2.Evidence, _Mapping]]] = ...) -> None: ...
