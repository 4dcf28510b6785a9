"""Exact rewrites of the TRM head that were tried and not kept, timed against the head itself.

Usage: python benchmarks/trm_head_variants.py [--threads 2]

Three ways to compute the same logits (5-way, 15 queries, 64-channel maps, eval, no grad):

- ``fused``: ``TaskRelatedMetric.head`` as shipped: one fused attention call
  (``scaled_dot_product_attention``) for all (query, class) pairs;
- ``explicit``: the query projection folded into the keys (Q'K'^T = F_q (F_s W_k^T W_q)^T), one
  matrix product for the scores of all classes, one shift and exponential, one batched product
  with the values, each row divided by its weight sum;
- ``batched``: ``explicit`` over 16 episodes at once (one batched product per step), per
  episode; HW = 49 only.

Each variant runs in alternating rounds; the table gives the median and the fastest round in ms
per episode, and the largest difference from ``fused``'s logits. docs/perf.md quotes this
output.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
from bench.methods.trm import TaskRelatedMetric, class_maps


def explicit_head(model: TaskRelatedMetric, support, labels, query, n_way: int) -> torch.Tensor:
    keys = class_maps(support, labels, n_way).flatten(1, 2)  # [n_way, K·HW, C]
    values = model.w_o(model.w_v(keys))
    query_keys = model.w_k(keys) @ model.w_q.weight * model.scale
    n_query, length = len(query), keys.shape[1]
    rows = query.flatten(2).transpose(1, 2).reshape(-1, keys.shape[-1])  # [n_query·HW, C]
    scores = (rows @ query_keys.reshape(n_way * length, -1).T).view(len(rows), n_way, length)
    weights = scores.sub_(scores.amax(-1, keepdim=True)).exp_()
    aligned = torch.bmm(weights.transpose(0, 1), values).div_(weights.sum(-1).T.unsqueeze(-1))
    return cosine_logits(model, rows.view(n_query, -1), aligned.view(n_way, n_query, -1))


def batched_head(model: TaskRelatedMetric, support, query, n_way: int) -> torch.Tensor:
    """``support`` [B, n_way·shot, C, H, W] grouped by class, ``query`` [B, Q, C, H, W]."""
    batch, _, channels = support.shape[:3]
    keys = support.flatten(3).transpose(2, 3).reshape(batch, n_way, -1, channels)
    values = model.w_o(model.w_v(keys)).flatten(1, 2)  # [B, n_way·L, C]
    query_keys = (model.w_k(keys) @ model.w_q.weight * model.scale).flatten(1, 2)
    n_query, length = query.shape[1], keys.shape[2]
    rows = query.flatten(3).transpose(2, 3).reshape(batch, -1, channels)  # [B, Q·HW, C]
    scores = torch.bmm(rows, query_keys.transpose(1, 2)).view(batch, -1, n_way, length)
    weights = scores.sub_(scores.amax(-1, keepdim=True)).exp_()
    sums = weights.sum(-1)  # [B, Q·HW, n_way]
    weights = weights.permute(0, 2, 1, 3).reshape(batch * n_way, -1, length)
    aligned = torch.bmm(weights, values.view(batch * n_way, length, channels))
    aligned = aligned.view(batch, n_way, -1, channels) / sums.transpose(1, 2).unsqueeze(-1)
    logits = [cosine_logits(model, rows[b].reshape(n_query, -1),
                            aligned[b].reshape(n_way, n_query, -1)) for b in range(batch)]
    return torch.stack(logits)


def one_by_one(head, support, labels, query) -> torch.Tensor:
    """``head`` on each episode of [B, …] support and query maps, logits stacked."""
    n_way = int(labels.max()) + 1
    return torch.stack([head(s, labels, q, n_way) for s, q in zip(support, query)])


def cosine_logits(model: TaskRelatedMetric, query_maps, aligned_maps) -> torch.Tensor:
    """τ · Frobenius cosine of [n_query, HW·C] query maps and [n_way, n_query, HW·C] aligned."""
    inner = (aligned_maps * query_maps).sum(-1).T
    norms = query_maps.norm(dim=-1)[:, None] * aligned_maps.norm(dim=-1).T
    return model.temperature(inner / norms.clamp(min=1e-8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = TaskRelatedMetric(TaskRelatedMetric.Config(), 1).eval()
    n_way, n_query = 5, 75
    print(f"{'HW':>4} {'shot':>4} {'variant':>9} {'median ms':>10} {'min ms':>8} {'max |Δ|':>9}")
    for side, shots, rounds, episodes in ((7, (1, 5), 15, 16), (21, (1, 5), 3, 2)):
        for shot in shots:
            support = torch.randn(episodes, n_way * shot, 64, side, side)
            query = torch.randn(episodes, n_query, 64, side, side)
            labels = torch.arange(n_way).repeat_interleave(shot)
            variants = {
                "fused": partial(one_by_one, model.head, support, labels, query),
                "explicit": partial(one_by_one, partial(explicit_head, model), support, labels,
                                    query),
            }
            if side == 7:  # at HW = 441 the explicit scores of one episode take 1.5 GB
                variants["batched"] = partial(batched_head, model, support, query, n_way)
            with torch.no_grad():
                reference = variants["fused"]()
                times = {name: [] for name in variants}
                for _ in range(rounds):
                    for name, run in variants.items():
                        start = time.perf_counter()
                        logits = run()
                        times[name].append((time.perf_counter() - start) / episodes * 1000)
                        times[name + "Δ"] = float((logits - reference).abs().max())
            for name in variants:
                print(f"{side * side:>4} {shot:>4} {name:>9} "
                      f"{statistics.median(times[name]):>10.2f} {min(times[name]):>8.2f} "
                      f"{times[name + 'Δ']:>9.1e}")


if __name__ == "__main__":
    main()
