"""All iterates of an affine recurrence Θ_k = A_k Θ_{k-1} + c_k without a Python loop per step.

Both gd (A_k constant) and mini-batch sgd (A_k = I - (2λ/#B) X_BᵀX_B - 2λ·l2·D) are such
recurrences. The steps are cut into blocks of `_BLOCK`; each block's maps are composed into
one map with batched matmuls (a loop over the block's positions, vectorised over all blocks),
the block-start values come from the same scan applied recursively to those composed maps,
and then every step inside every block is replayed from its start value, again vectorised
over blocks. Python loops run O(_BLOCK · log_BLOCK(K)) times instead of K times.

`prepare` does the composing and `scan` the replaying, so maps that repeat (sgd without
shuffling sees the same batches every epoch) are composed once.

Precision: the replay inside a block is the plain sequential recurrence; only the block-start
values come from composed maps (products of at most _BLOCK matrices per recursion level), so
the error stays a small multiple of the sequential one (the tests check 1e-9 relative).
"""

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

_BLOCK = 32


@dataclass(frozen=True)
class PreparedMaps:
    """The maps of K consecutive steps, blocked, with each block's composition."""

    steps: int
    maps: FloatArray  # (_BLOCK, blocks, d, d), or (K, d, d) when K <= _BLOCK
    offsets: FloatArray
    coarse: "PreparedMaps | None"  # the composed block maps, prepared the same way


def prepare(maps: FloatArray, offsets: FloatArray) -> PreparedMaps:
    """Block and compose the maps Θ ↦ maps[k] @ Θ + offsets[k] for scanning."""
    steps, dim = offsets.shape
    if steps <= _BLOCK:
        return PreparedMaps(steps, maps, offsets, None)
    n_blocks = -(-steps // _BLOCK)
    padded = n_blocks * _BLOCK
    if padded > steps:  # identity maps pad the last block
        maps = np.concatenate([maps, np.broadcast_to(np.eye(dim), (padded - steps, dim, dim))])
        offsets = np.concatenate([offsets, np.zeros((padded - steps, dim))])
    # Position-major layout (position in block, block, ...): each vectorised slice is then
    # contiguous, which the replay, run once per epoch on cached maps, benefits from.
    blocked_maps = np.ascontiguousarray(
        maps.reshape(n_blocks, _BLOCK, dim, dim).transpose(1, 0, 2, 3)
    )
    blocked_offsets = np.ascontiguousarray(
        offsets.reshape(n_blocks, _BLOCK, dim).transpose(1, 0, 2)
    )
    composed = blocked_maps[0].copy()
    composed_offset = blocked_offsets[0].copy()
    for i in range(1, _BLOCK):
        composed = blocked_maps[i] @ composed
        composed_offset = np.einsum("bij,bj->bi", blocked_maps[i], composed_offset)
        composed_offset += blocked_offsets[i]
    return PreparedMaps(steps, blocked_maps, blocked_offsets, prepare(composed, composed_offset))


def scan(prepared: PreparedMaps, theta0: FloatArray) -> FloatArray:
    """Θ_1..Θ_K, shape (K, d), starting from Θ_0 = theta0."""
    dim = theta0.shape[0]
    if prepared.coarse is None:
        out = np.empty((prepared.steps, dim))
        theta = theta0
        for k in range(prepared.steps):
            theta = prepared.maps[k] @ theta + prepared.offsets[k]
            out[k] = theta
        return out
    block_ends = scan(prepared.coarse, theta0)
    theta = np.concatenate([theta0[None, :], block_ends[:-1]])
    n_blocks = prepared.maps.shape[1]
    out = np.empty((_BLOCK, n_blocks, dim))
    for i in range(_BLOCK):
        theta = np.einsum("bij,bj->bi", prepared.maps[i], theta, out=out[i])
        theta += prepared.offsets[i]
    return out.transpose(1, 0, 2).reshape(n_blocks * _BLOCK, dim)[: prepared.steps]
