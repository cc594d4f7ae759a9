"""The price feeder: with vote_mode "commit_reveal", the node commits and reveals the operator's price.

The operator sets a price (`POST /v1/admin/unit-of-compute-price-proposal`); the feeder keeps it as
the standing price in `HOME/price_feeder.json` (0600, `node.secret_files`) with the salt, price and
epoch of each commit it makes, written before the commit is sent, so a restarted node still reveals
what it committed. After every applied block (not while it syncs) it looks at the chain and sends
what is due, signed with the validator key:

- the reveal of its commit of the previous epoch, as soon as the epoch starts (each commit is filed
  under the epoch the node was in when it sent it, which may be the epoch before the one it landed in:
  the reveal looks in both);
- a commit of the standing price for the current epoch (a fresh salt from `os.urandom`): at once
  when the operator posts a price and the epoch has no commit of it yet, else once half the epoch
  has passed (as Terra's price feeder re-sends its prevote every period), so the vote stays fresh
  without any request. A price posted after the epoch's commit is committed at the start of the next.

Each reveal or commit is sent at most `MAX_ATTEMPTS` times per epoch (a refused one is retried at the
next block). The feeder does nothing in vote_mode "open", where the price proposal is one transaction.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from chain.epochs import compute_epoch_start_height
from chain.money import to_ngonka
from chain.params import Params
from chain.tx import Msg, MsgCommitPrice, MsgRevealPrice, compute_price_commit_hash

from .errors import ConfigError, MempoolError
from .secret_files import read_secret, replace_secret

log = logging.getLogger(__name__)

FEEDER_FILE = "price_feeder.json"
MAX_ATTEMPTS = 3  # sends of one reveal or commit per epoch
MAX_COMMITS_PER_EPOCH = 8  # commits kept per epoch in the file (the newest)


class FeederNode(Protocol):
    """What the feeder needs from the node."""

    @property
    def syncing(self) -> bool: ...

    def get_params(self) -> Params: ...

    def query(self, path: str, **params: Any) -> Any: ...

    def submit_own(self, msgs: list[Msg]) -> str: ...

    def is_pending(self, tx_hash: str) -> bool: ...


@dataclass
class FeederFile:
    """The feeder's file: the standing price and, per epoch, the commits it sent (salt, price, denom),
    newest last: a commit sent again (its first still in some mempool) keeps the earlier ones, and
    the reveal opens the one the chain holds."""

    price: int | None = None
    denom: str = "ngonka"
    commits: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"price": self.price, "denom": self.denom, "commits": {str(e): c for e, c in self.commits.items()}}

    @classmethod
    def from_json(cls, doc: Any) -> FeederFile:
        """The file's content; ValueError naming what is wrong."""
        if not isinstance(doc, dict) or set(doc) != {"price", "denom", "commits"}:
            raise ValueError("must be an object with price, denom and commits")
        if doc["price"] is not None:
            to_ngonka(doc["price"], doc["denom"], field="price")
        commits = {}
        for epoch, sent in doc["commits"].items():
            if not isinstance(sent, list) or not 1 <= len(sent) <= MAX_COMMITS_PER_EPOCH:
                raise ValueError(f"commits.{epoch} must be a list of 1 to {MAX_COMMITS_PER_EPOCH} commits")
            for commit in sent:
                if not isinstance(commit, dict) or set(commit) != {"salt", "price", "denom"}:
                    raise ValueError(f"commits.{epoch} must hold objects with salt, price and denom")
                bytes.fromhex(commit["salt"])
            commits[int(epoch)] = sent
        return cls(doc["price"], doc["denom"], commits)


def load_feeder_file(path: Path) -> FeederFile:
    """The feeder's file (empty if missing); ConfigError if it is unreadable, a link or not owner-only."""
    try:
        data = read_secret(path)
    except FileNotFoundError:
        return FeederFile()
    try:
        return FeederFile.from_json(json.loads(data))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path} is not a price feeder file: {exc}") from None


def compute_commit_hash(commit: dict[str, Any], validator: str) -> str:
    """The chain's commit hash of a commit the feeder made."""
    return compute_price_commit_hash(commit["salt"], commit["price"], commit["denom"], validator)


class PriceFeeder:
    """Commits and reveals the operator's standing price in vote_mode commit_reveal (see the module docstring)."""

    def __init__(
        self, node: FeederNode, address: str, path: Path, *, draw_salt: Callable[[], bytes] = lambda: os.urandom(32)
    ) -> None:
        self.node = node
        self.address = address
        self.path = path
        self.file = load_feeder_file(path)
        self.draw_salt = draw_salt
        self.sent: dict[tuple[str, int], str] = {}  # (reveal | commit, epoch) -> hash of the last tx sent
        self.attempts: dict[tuple[str, int], int] = {}
        self.commit_next = False  # the operator posted after this epoch's commit: commit at the next epoch's start

    def save(self) -> None:
        """Write the file (0600, a new file renamed over the old one)."""
        replace_secret(self.path, json.dumps(self.file.to_json(), sort_keys=True) + "\n")

    def set_price(self, price: int, denom: str) -> None:
        """Make `price` `denom` the standing price, committed from now on."""
        self.file.price, self.file.denom = price, denom
        self.save()

    def get_commits(self) -> dict[int, dict[str, Any]]:
        """The chain's unrevealed commits of this validator, by epoch."""
        answer = self.node.query(f"price_commits/{self.address}")
        return {c["epoch"]: c for c in answer["commits"]}

    def on_block(self, height: int) -> None:
        """The commit listener: send what is due after a block."""
        self.tick(height)

    def get_known_commit(self, epoch: int, commit_hash: str) -> dict[str, Any] | None:
        """The salt, price and denom of this node's commit that hashes to `commit_hash`, if any: filed
        under `epoch` or the epoch before (a commit sent in an epoch's last block, or by a node a block
        behind, may land in the next epoch: it is filed under the epoch the node was in)."""
        for filed in (epoch, epoch - 1):
            sent = self.file.commits.get(filed, [])
            found = next((c for c in reversed(sent) if compute_commit_hash(c, self.address) == commit_hash), None)
            if found is not None:
                return found
        return None

    def is_in_flight(self, kind: str, epoch: int) -> bool:
        """True if a reveal or commit of `epoch` was sent and is still in the mempool."""
        tx_hash = self.sent.get((kind, epoch))
        return tx_hash is not None and self.node.is_pending(tx_hash)

    def may_send(self, kind: str, epoch: int) -> bool:
        """True if a reveal or commit of `epoch` is not in flight and has attempts left."""
        return not self.is_in_flight(kind, epoch) and self.attempts.get((kind, epoch), 0) < MAX_ATTEMPTS

    def is_commit_due(self, epoch: dict[str, Any], params: Params, height: int, now: bool) -> bool:
        """True if the standing price should be committed for this epoch now: asked for, or half the epoch passed."""
        if self.file.price is None:
            return False
        view = self.node.query(f"validator/{self.address}")
        if view["pending_stake"] == 0:
            return False  # not a validator next epoch, when the reveal would count
        start = compute_epoch_start_height(params, epoch["index"])
        return now or self.commit_next or height + 1 - start >= params.epoch_length // 2

    def tick(self, height: int, *, commit_now: bool = False) -> str | None:
        """Send the reveal and the commit that are due (one transaction); the tx hash of a commit sent now."""
        params = self.node.get_params()
        if params.vote_mode != "commit_reveal" or self.node.syncing:
            return None
        epoch = self.node.query("epoch/current")
        index = epoch["index"]
        on_chain = self.get_commits()
        msgs: list[Msg] = []
        kinds = []
        self.sent = {k: v for k, v in self.sent.items() if k[1] >= index - 1}  # bounded: two epochs
        self.attempts = {k: v for k, v in self.attempts.items() if k[1] >= index - 1}
        previous = on_chain.get(index - 1)
        if previous is not None and self.may_send("reveal", index - 1):
            known = self.get_known_commit(index - 1, previous["hash"])
            if known is not None:
                msgs.append(MsgRevealPrice(known["salt"], known["price"], known["denom"]))
                kinds.append(("reveal", index - 1))
            else:
                log.warning("the commit of epoch %d on chain is none in %s: not revealed", index - 1, self.path)
                self.attempts[("reveal", index - 1)] = MAX_ATTEMPTS
        if (
            index not in on_chain
            and self.may_send("commit", index)
            and self.is_commit_due(epoch, params, height, commit_now)
        ):
            assert self.file.price is not None
            commit = {"salt": self.draw_salt().hex(), "price": self.file.price, "denom": self.file.denom}
            sent = [*self.file.commits.get(index, []), commit][-MAX_COMMITS_PER_EPOCH:]
            self.file.commits = {e: c for e, c in self.file.commits.items() if e >= index - 2} | {index: sent}
            self.save()  # the salt is on disk before the commit leaves the node
            msgs.append(MsgCommitPrice(compute_commit_hash(commit, self.address)))
            kinds.append(("commit", index))
            self.commit_next = False
        if not msgs:
            return None
        try:
            tx_hash = self.node.submit_own(msgs)
        except MempoolError as exc:
            log.warning("price feeder: the node refused its own %s: %s", " and ".join(k for k, _ in kinds), exc)
            for kind in kinds:
                self.attempts[kind] = self.attempts.get(kind, 0) + 1
            if commit_now:
                raise
            return None
        for kind in kinds:
            self.sent[kind] = tx_hash
            self.attempts[kind] = self.attempts.get(kind, 0) + 1
        return tx_hash if ("commit", index) in kinds else None

    def explain_no_commit(self) -> tuple[str, str]:
        """Why `tick(commit_now=True)` sent no commit: a code and a message."""
        if self.node.query(f"validator/{self.address}")["pending_stake"] == 0:
            return "not_validator", (
                f"{self.address} has no stake for the next epoch: a commit made now would be revealed when it no "
                "longer validates (the price is kept, and committed once it bonds)"
            )
        return "commit_refused", (
            f"the feeder already sent {MAX_ATTEMPTS} commits this epoch and they were refused; see the node's log"
        )

    def get_sent_commit(self, epoch: int) -> str | None:
        """The hash of the last commit transaction sent for `epoch`, if any."""
        return self.sent.get(("commit", epoch))


__all__ = ["FEEDER_FILE", "FeederFile", "PriceFeeder", "load_feeder_file"]
