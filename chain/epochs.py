"""Epoch arithmetic: which epoch a height is in, where an epoch starts and ends, and from which epoch a
change committed at a height is in force. Epoch `e` spans heights `e·L + 1` to `(e+1)·L`; genesis
(height 0) is in epoch 0. Every function takes the params (or the epoch length itself) first."""

from __future__ import annotations

from .params import Params


def compute_epoch_length(params_or_length: Params | int) -> int:
    """The blocks per epoch of `params` (or the length itself)."""
    return params_or_length if isinstance(params_or_length, int) else params_or_length.epoch_length


def is_epoch_end(params_or_length: Params | int, height: int) -> bool:
    """True if `height` is the last block of its epoch."""
    return height > 0 and height % compute_epoch_length(params_or_length) == 0


def compute_epoch_at_height(params_or_length: Params | int, height: int) -> int:
    """The epoch a block runs in: epoch e spans heights e·L + 1 … (e+1)·L; genesis (height 0) is in epoch 0."""
    return 0 if height <= 0 else (height - 1) // compute_epoch_length(params_or_length)


def compute_epoch_start_height(params_or_length: Params | int, epoch: int) -> int:
    """The first height of `epoch`."""
    return epoch * compute_epoch_length(params_or_length) + 1


def compute_effective_epoch(params_or_length: Params | int, height: int) -> int:
    """The first epoch in which a change committed at `height` is in force: the epoch whose price a price
    vote first counts in, from which a bond gives power, a passed proposal's model is active; also the
    epoch whose price and validator set the end of `height` sets when it ends an epoch."""
    return compute_epoch_at_height(params_or_length, height) + 1
