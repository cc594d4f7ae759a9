from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tx(_message.Message):
    __slots__ = ("raw",)
    RAW_FIELD_NUMBER: _ClassVar[int]
    raw: bytes
    def __init__(self, raw: _Optional[bytes] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ("chain_id", "height", "time_ms", "last_block_id", "last_commit_hash", "txs_hash", "app_hash", "validators_hash", "proposer", "evidence_hash")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_COMMIT_HASH_FIELD_NUMBER: _ClassVar[int]
    TXS_HASH_FIELD_NUMBER: _ClassVar[int]
    APP_HASH_FIELD_NUMBER: _ClassVar[int]
    VALIDATORS_HASH_FIELD_NUMBER: _ClassVar[int]
    PROPOSER_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_HASH_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    height: int
    time_ms: int
    last_block_id: str
    last_commit_hash: str
    txs_hash: str
    app_hash: str
    validators_hash: str
    proposer: str
    evidence_hash: str
    def __init__(self, chain_id: _Optional[str] = ..., height: _Optional[int] = ..., time_ms: _Optional[int] = ..., last_block_id: _Optional[str] = ..., last_commit_hash: _Optional[str] = ..., txs_hash: _Optional[str] = ..., app_hash: _Optional[str] = ..., validators_hash: _Optional[str] = ..., proposer: _Optional[str] = ..., evidence_hash: _Optional[str] = ...) -> None: ...

class Vote(_message.Message):
    __slots__ = ("type", "height", "round", "block_id", "timestamp_ms", "validator", "pubkey", "signature")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    VALIDATOR_FIELD_NUMBER: _ClassVar[int]
    PUBKEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    type: str
    height: int
    round: int
    block_id: str
    timestamp_ms: int
    validator: str
    pubkey: bytes
    signature: bytes
    def __init__(self, type: _Optional[str] = ..., height: _Optional[int] = ..., round: _Optional[int] = ..., block_id: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., validator: _Optional[str] = ..., pubkey: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Commit(_message.Message):
    __slots__ = ("height", "round", "block_id", "precommits")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    PRECOMMITS_FIELD_NUMBER: _ClassVar[int]
    height: int
    round: int
    block_id: str
    precommits: _containers.RepeatedCompositeFieldContainer[Vote]
    def __init__(self, height: _Optional[int] = ..., round: _Optional[int] = ..., block_id: _Optional[str] = ..., precommits: _Optional[_Iterable[_Union[Vote, _Mapping]]] = ...) -> None: ...

class Block(_message.Message):
    __slots__ = ("header", "txs", "last_commit", "evidence")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    TXS_FIELD_NUMBER: _ClassVar[int]
    LAST_COMMIT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    header: Header
    txs: _containers.RepeatedScalarFieldContainer[bytes]
    last_commit: Commit
    evidence: _containers.RepeatedCompositeFieldContainer[Evidence]
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., txs: _Optional[_Iterable[bytes]] = ..., last_commit: _Optional[_Union[Commit, _Mapping]] = ..., evidence: _Optional[_Iterable[_Union[Evidence, _Mapping]]] = ...) -> None: ...

class Proposal(_message.Message):
    __slots__ = ("height", "round", "pol_round", "block", "timestamp_ms", "proposer", "pubkey", "signature")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    POL_ROUND_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    PROPOSER_FIELD_NUMBER: _ClassVar[int]
    PUBKEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    height: int
    round: int
    pol_round: int
    block: Block
    timestamp_ms: int
    proposer: str
    pubkey: bytes
    signature: bytes
    def __init__(self, height: _Optional[int] = ..., round: _Optional[int] = ..., pol_round: _Optional[int] = ..., block: _Optional[_Union[Block, _Mapping]] = ..., timestamp_ms: _Optional[int] = ..., proposer: _Optional[str] = ..., pubkey: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Evidence(_message.Message):
    __slots__ = ("vote_a", "vote_b")
    VOTE_A_FIELD_NUMBER: _ClassVar[int]
    VOTE_B_FIELD_NUMBER: _ClassVar[int]
    vote_a: Vote
    vote_b: Vote
    def __init__(self, vote_a: _Optional[_Union[Vote, _Mapping]] = ..., vote_b: _Optional[_Union[Vote, _Mapping]] = ...) -> None: ...

class ConsensusMessage(_message.Message):
    __slots__ = ("proposal", "vote", "evidence")
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    VOTE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    proposal: Proposal
    vote: Vote
    evidence: Evidence
    def __init__(self, proposal: _Optional[_Union[Proposal, _Mapping]] = ..., vote: _Optional[_Union[Vote, _Mapping]] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ...) -> None: ...

class BlockWithCommit(_message.Message):
    __slots__ = ("block", "commit")
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    block: Block
    commit: Commit
    def __init__(self, block: _Optional[_Union[Block, _Mapping]] = ..., commit: _Optional[_Union[Commit, _Mapping]] = ...) -> None: ...
