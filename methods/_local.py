"""Shared pieces of the heads that compare local descriptors (dn4, ctx, frn).

``class_descriptors`` turns the support maps of an episode into the K·HW local descriptors of each
class; ``over_query_blocks`` runs a head's score on blocks of query images so that its largest
transient intermediate (DN4's [queries, classes, HW, K·HW] cosines: 23 GB for one 20-way 5-shot
84×84 Conv-64F episode) stays under a budget. Under autograd each block keeps only what its
backward needs (DN4: the top-k indices; the cosine tensor is not saved), so training stays bounded
too, without recomputation (torch's checkpoint would import torch._dynamo: seconds at the first
call). Blocks never change the result.
"""

from __future__ import annotations

import torch

from bench.errors import BenchError

# Bytes of one block's largest intermediate: small beside a laptop's memory, large enough that
# every 28×28 episode of the reference grid (up to 20-way 5-shot 15-query) is one block, trained
# without recomputation.
BLOCK_BYTES = 1 << 30


def descriptors(maps: torch.Tensor) -> torch.Tensor:
    """Feature maps [N, C, H, W] → local descriptors [N, HW, C]."""
    return maps.flatten(2).transpose(1, 2)


def class_descriptors(support: torch.Tensor, labels: torch.Tensor, n_way: int,
                      method: str) -> torch.Tensor:
    """Support maps [N, C, H, W] → each class's descriptors [n_way, K·HW, C], shots in order."""
    counts = torch.bincount(labels, minlength=n_way)
    if bool((counts != counts[0]).any()) or int(counts[0]) == 0:
        raise BenchError(f"{method} needs the same number of shots in every class, got "
                         f"{counts.tolist()}")
    order = torch.argsort(labels, stable=True)
    local = descriptors(support[order])  # [N, HW, C], class-major
    return local.reshape(n_way, -1, local.shape[-1])


def over_query_blocks(score, query: torch.Tensor, bytes_per_query: int,
                      budget: int | None = None) -> torch.Tensor:
    """``score(block)`` → [block, n_way] on blocks of ``query`` (rows: query images) of at most
    ``budget // bytes_per_query`` images, concatenated."""
    budget = BLOCK_BYTES if budget is None else budget
    size = max(1, budget // max(1, bytes_per_query))
    if size >= len(query):
        return score(query)
    return torch.cat([score(block) for block in query.split(size)])
