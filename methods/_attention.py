"""The three normalisations of TRM's attention weights α (patent CN 114943859 B, S306).

Every function here takes, for G key sets (one per class, or per shot), the pre-scaled queries
``q`` [G, n·HW, d] (the HW positions of n query images, the same for every key set), keys ``k``
[G, L, d] and values ``v`` [G, L, C], and returns α v [G, n·HW, C], where α is, per (query image,
key set) pair, an HW × L matrix of weights over the L key positions:

- ``row``: softmax over each row (each query position's weights sum to 1), fused in
  ``scaled_dot_product_attention`` (its weights are never stored);
- ``dual``: row softmax ⊙ column softmax, the column softmax running over one query image's HW
  positions for each key ("normalises each row and each column", [0101]);
- ``sinkhorn``: alternating row and column normalisations of exp(S), ending on a row one.

The explicit paths (dual, sinkhorn) hold weight matrices of the whole block; callers size blocks
with ``WEIGHT_COPIES``. ``DualSoftmaxAttention`` keeps only q, k and v for its backward pass and
recomputes the weights there, so a training step holds one block's weights at a time, as in
inference; sinkhorn gets the same through activation checkpointing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

# Weight-sized tensors alive at once: dual forward 3 (scores, two softmaxes), dual backward 4
# (two softmaxes, their product, its gradient); sinkhorn saves about two per normalisation.
WEIGHT_COPIES = {"row": 4, "dual": 4, "sinkhorn": 8}


def row_attention(q, k, v, hw: int, iters: int = 0):
    return F.scaled_dot_product_attention(q, k, v, scale=1.0)


def dual_attention(q, k, v, hw: int, iters: int = 0):
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return DualSoftmaxAttention.apply(q, k, v, hw)
    return _dual_forward(q, k, v, hw)  # inference: no autograd node


def sinkhorn_attention(q, k, v, hw: int, iters: int = 3):
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return checkpoint(_sinkhorn, q, k, v, hw, iters, use_reentrant=False)
    return _sinkhorn(q, k, v, hw, iters)


ATTENTION = {"row": row_attention, "dual": dual_attention, "sinkhorn": sinkhorn_attention}


def _sinkhorn(q, k, v, hw: int, iters: int):
    scores = torch.bmm(q, k.transpose(1, 2))
    log_weights = scores.log_softmax(-1, dtype=_accumulation(scores.dtype))
    for _ in range(iters):
        per_query = log_weights.unflatten(1, (-1, hw))  # [G, n, HW, L]
        log_weights = (per_query - per_query.logsumexp(-2, keepdim=True)).flatten(1, 2)
        log_weights = log_weights.log_softmax(-1)
    return torch.bmm(log_weights.exp().to(v.dtype), v)


def _accumulation(dtype: torch.dtype) -> torch.dtype:
    """Softmaxes run in at least float32 (bfloat16 scores under autocast)."""
    return torch.promote_types(dtype, torch.float32)


# The factored column softmax below needs e^(r_i − max r) and the column sums to stay inside the
# floating-point range; past these bounds a block falls back to the plain column softmax.
_FACTOR_RANGE = {torch.float32: 80.0, torch.float64: 700.0}
_FACTOR_TINY = {torch.float32: 1e-30, torch.float64: 1e-290}


def _row_softmax(q, k):
    scores = torch.bmm(q, k.transpose(1, 2))  # [G, n·HW, L]
    return scores, scores.softmax(-1, dtype=_accumulation(scores.dtype))


def _column_factors(scores, rows, hw: int):
    """(u, w) with column softmax_ij = rows_ij · u_i · w_j, per query image, or None.

    With r_i the row log-sum-exp, exp(s_ij − c_j) = rows_ij e^(r_i) / Σ_i' rows_i'j e^(r_i'), so
    u_i = e^(r_i − max r) and w_j = 1 / Σ_i rows_ij u_i: one matrix-vector product instead of a
    softmax along the strided axis (4× the cost of the row softmax on the CPU). r_i comes free
    from the row softmax: its largest entry is 1 / Σ_j e^(s_ij − max_j s_ij).
    """
    log_sums = scores.amax(-1).to(rows.dtype) - rows.amax(-1).log()  # r_i: [G, n·HW]
    per_query = log_sums.unflatten(1, (-1, hw))  # [G, n, HW]
    top = per_query.amax(-1, keepdim=True)
    if bool((top - per_query.amin(-1, keepdim=True) > _FACTOR_RANGE[rows.dtype]).any()):
        return None
    u = (per_query - top).exp()
    groups = u.shape[0] * u.shape[1]
    sums = torch.bmm(u.reshape(groups, 1, hw), rows.reshape(groups, hw, -1))  # [G·n, 1, L]
    if bool((sums < _FACTOR_TINY[rows.dtype]).any()):
        return None
    return u.unsqueeze(-1), sums.reciprocal().view(*u.shape[:2], 1, -1)


def _plain_column_softmax(scores, hw: int, dtype: torch.dtype):
    """The column softmax over each query image's HW positions, along the strided axis."""
    return scores.unflatten(1, (-1, hw)).softmax(-2, dtype=dtype).flatten(1, 2)


def _column_softmax(scores, rows, hw: int):
    factors = _column_factors(scores, rows, hw)
    if factors is None:
        return _plain_column_softmax(scores, hw, rows.dtype)
    u, w = factors
    return (rows.unflatten(1, (-1, hw)) * u).mul_(w).flatten(1, 2)


def _dual_forward(q, k, v, hw: int):
    """α v without storing the column softmax: α_ij = rows_ij² u_i w_j, so
    α v = u ⊙ (rows² (w v))."""
    scores, rows = _row_softmax(q, k)
    factors = _column_factors(scores, rows, hw)
    if factors is None:
        columns = _plain_column_softmax(scores, hw, rows.dtype)
        return torch.bmm(rows.mul_(columns).to(v.dtype), v)
    del scores
    u, w = factors  # [G, n, HW, 1], [G, n, 1, L]
    groups, keys = u.shape[0] * u.shape[1], rows.shape[-1]
    scaled_values = (w.transpose(-1, -2) * v.unsqueeze(1)).to(v.dtype)  # [G, n, L, C]
    out = torch.bmm(rows.square_().view(groups, hw, keys).to(v.dtype),
                    scaled_values.view(groups, keys, -1))
    return (out.view(*u.shape[:3], -1) * u.to(v.dtype)).flatten(1, 2)


class DualSoftmaxAttention(torch.autograd.Function):
    """α v with α = softmax_rows(q kᵀ) ⊙ softmax_columns(q kᵀ); the backward pass recomputes α.

    With A = P ⊙ Q (P row softmax, Q column softmax) and E = A ⊙ (g vᵀ) for the output gradient
    g, the score gradient is dS = 2E − P ⊙ rowsum(E) − Q ⊙ colsum(E): the two softmax backward
    formulas, each applied to its own factor of the product.
    """

    @staticmethod
    def forward(ctx, q, k, v, hw: int):
        ctx.save_for_backward(q, k, v)
        ctx.hw = hw
        with torch.autocast(q.device.type, enabled=False):
            return _dual_forward(q, k, v, hw)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        q, k, v = ctx.saved_tensors
        hw = ctx.hw
        with torch.autocast(q.device.type, enabled=False):
            scores, rows = _row_softmax(q, k)
            columns = _column_softmax(scores, rows, hw)
            del scores
            weights = rows * columns
            grad_v = torch.bmm(weights.to(v.dtype).transpose(1, 2), grad_out.to(v.dtype))
            product = torch.bmm(grad_out.to(v.dtype), v.transpose(1, 2)).to(weights.dtype)
            product.mul_(weights)
            del weights
            rows.mul_(product.sum(-1, keepdim=True))
            per_query = columns.unflatten(1, (-1, hw))
            per_query.mul_(product.unflatten(1, (-1, hw)).sum(-2, keepdim=True))
            grad_scores = product.mul_(2).sub_(rows).sub_(columns).to(q.dtype)
            del rows, columns
            grad_q = torch.bmm(grad_scores, k)
            grad_k = torch.bmm(grad_scores.transpose(1, 2), q)
        return grad_q, grad_k, grad_v, None
