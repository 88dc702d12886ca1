"""All iterates of an affine recurrence Θ_k = A_k Θ_{k-1} + c_k without a Python loop per step.

Both gd (A_k constant) and mini-batch sgd (A_k = I - (2λ/#B) X_BᵀX_B - 2λ·l2·D) are such
recurrences. The steps are cut into blocks of `_BLOCK`; each block's maps are composed into
one map with batched matmuls (a loop over the block's positions, vectorised over all blocks),
the block-start values come from the same scan applied recursively to those composed maps,
and then every step inside every block is replayed from its start value, again vectorised
over blocks. Python loops run O(_BLOCK · log_BLOCK(K)) times instead of K times.

Precision: the replay inside a block is the plain sequential recurrence; only the block-start
values come from composed maps (products of at most _BLOCK matrices per recursion level), so
the error stays a small multiple of the sequential one (the tests check 1e-9 relative).
"""

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

_BLOCK = 32


def affine_scan(maps: FloatArray, offsets: FloatArray, theta0: FloatArray) -> FloatArray:
    """Return Θ_1..Θ_K, shape (K, d), for Θ_k = maps[k-1] @ Θ_{k-1} + offsets[k-1]."""
    steps, dim = offsets.shape
    if steps <= _BLOCK:
        out = np.empty((steps, dim))
        theta = theta0
        for k in range(steps):
            theta = maps[k] @ theta + offsets[k]
            out[k] = theta
        return out
    n_blocks = -(-steps // _BLOCK)
    padded = n_blocks * _BLOCK
    if padded > steps:  # identity maps pad the last block
        maps = np.concatenate([maps, np.broadcast_to(np.eye(dim), (padded - steps, dim, dim))])
        offsets = np.concatenate([offsets, np.zeros((padded - steps, dim))])
    # Position-major layout (position in block, block, ...) keeps each vectorised slice
    # contiguous, which matters for batched 4x4 products.
    block_maps = np.ascontiguousarray(
        maps.reshape(n_blocks, _BLOCK, dim, dim).transpose(1, 0, 2, 3)
    )
    block_offsets = np.ascontiguousarray(offsets.reshape(n_blocks, _BLOCK, dim).transpose(1, 0, 2))

    composed = block_maps[0].copy()
    composed_offset = block_offsets[0].copy()
    for i in range(1, _BLOCK):
        composed = block_maps[i] @ composed
        composed_offset = np.einsum("bij,bj->bi", block_maps[i], composed_offset)
        composed_offset += block_offsets[i]

    block_ends = affine_scan(composed, composed_offset, theta0)
    theta = np.concatenate([theta0[None, :], block_ends[:-1]])
    out = np.empty((n_blocks, _BLOCK, dim))
    for i in range(_BLOCK):
        theta = np.einsum("bij,bj->bi", block_maps[i], theta)
        theta += block_offsets[i]
        out[:, i] = theta
    return out.reshape(padded, dim)[:steps]
