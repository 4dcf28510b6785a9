"""Task-related metric (TRM), patent CN 114943859 B; see ../shared/docs/trm-method.md.

For every (query, class) pair the class's support feature map is re-arranged to align with the
query by cross-attention (queries from the query image, keys and values from the K·HW support
positions of the class), projected back to C channels, and compared with the query by cosine:

    Q' = F_q W_q,  K' = F_s W_k,  V' = F_s W_v                      (formula 1)
    F_A = softmax(Q' K'^T / sqrt(C)) V' W_o                          (formula 2, step S307)
    logit_c = τ · cos(F_q, F_A^(c))  (Frobenius; or mean per-position cosine)   (formula 3)

All (query, class) pairs of an episode go through one batched attention call, chunked over
queries so that the attention weights stay under ``max_attn_mib``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError
from bench.registry import METHODS
from bench.methods.base import FewShotClassifier, MethodConfig, Temperature, param

# Copies of the weight tensor alive at once in the explicit (dual-softmax) path: scores, two
# softmaxes and their product.
_WEIGHT_COPIES = 4


@METHODS.register("trm")
class TaskRelatedMetric(FewShotClassifier):
    """Cross-attention aligns each class's support map with the query; cosine scores the pair."""

    @dataclass(frozen=True)
    class Config(MethodConfig):
        backbone: str = param("conv64f", "embedding network: conv4 | conv64f")
        attn_dim: int = param(64, "width of the Q/K/V projections (patent: 64 or 128)")
        dual_softmax: bool = param(False, "weights = row softmax ⊙ column softmax")
        per_position: bool = param(False, "mean of per-position cosines, not whole-map cosine")
        temperature: str = param("learned", "logit scale τ: learned | fixed (1.0 = patent text)")
        tau: float = param(10.0, "initial (or fixed) value of τ")
        max_attn_mib: int = param(2048, "memory bound of the attention weights; chunks queries")

        def validate(self) -> None:
            super().validate()
            if self.temperature not in ("learned", "fixed"):
                raise BenchError(f"temperature={self.temperature!r} of trm is not valid; "
                                 "valid values: learned, fixed")
            if self.attn_dim < 1 or self.max_attn_mib < 1:
                raise BenchError("attn_dim and max_attn_mib of trm must be positive integers")

    def __init__(self, config: Config, in_channels: int, channels: int = 64):
        super().__init__(config, in_channels)
        self.channels = channels
        self.w_q = nn.Linear(channels, config.attn_dim, bias=False)
        self.w_k = nn.Linear(channels, config.attn_dim, bias=False)
        self.w_v = nn.Linear(channels, config.attn_dim, bias=False)
        self.w_o = nn.Linear(config.attn_dim, channels, bias=False)
        self.temperature = Temperature(config.tau, learned=config.temperature == "learned")

    def head(self, support, support_labels, query, n_way):
        keys = class_positions(support, support_labels, n_way)  # [n_way, K·HW, C]
        query_positions = query.flatten(2).transpose(1, 2)  # [n_query, HW, C]
        projected_keys = self.w_k(keys)
        # W_o is linear, so (α V') W_o = α (V' W_o): projecting the values once per class
        # instead of every aligned map once per (query, class) pair gives the same F_A.
        output_values = self.w_o(self.w_v(keys))  # [n_way, K·HW, C]
        chunk = self.query_chunk_size(query_positions.shape[1], keys.shape[1], n_way)
        cosines = [
            self.cosine_to_aligned(block, projected_keys, output_values)
            for block in query_positions.split(chunk)
        ]
        return self.temperature(torch.cat(cosines))

    def query_chunk_size(self, query_hw: int, key_rows: int, n_way: int) -> int:
        bytes_per_query = n_way * query_hw * key_rows * 4 * _WEIGHT_COPIES
        return max(1, (self.config.max_attn_mib << 20) // bytes_per_query)

    def aligned_support(self, query_positions, projected_keys, output_values):
        """F_A [n_way, n_query, HW, C]: each class's support re-arranged for each query."""
        n_query, hw, _ = query_positions.shape
        n_way = len(projected_keys)
        q = self.w_q(query_positions)  # [n_query, HW, d]
        if self.config.dual_softmax:  # the column softmax runs over one query's positions
            q = q.unsqueeze(1).expand(-1, n_way, -1, -1)
            aligned = self.attention_weights(q, projected_keys.unsqueeze(0)) @ output_values
            return aligned.transpose(0, 1).contiguous()
        # Row softmax: every query position attends on its own, so the positions of all the
        # block's queries form one sequence per class: one attention call for all pairs.
        q = q.reshape(1, n_query * hw, -1).expand(n_way, -1, -1)
        attended = F.scaled_dot_product_attention(q, projected_keys, output_values,
                                                  scale=self.scale)
        return attended.view(n_way, n_query, hw, -1)

    @property
    def scale(self) -> float:
        return 1.0 / math.sqrt(self.channels)

    def attention_weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """α [..., HW, K·HW]: row softmax, or row ⊙ column softmax with ``dual_softmax``."""
        scores = q @ k.transpose(-1, -2) * self.scale
        if self.config.dual_softmax:
            return scores.softmax(dim=-1) * scores.softmax(dim=-2)
        return scores.softmax(dim=-1)

    def cosine_to_aligned(self, query_positions, projected_keys, output_values):
        """cos(F_q, F_A^(c)) for every query of the block and every class: [n_query, n_way]."""
        aligned = self.aligned_support(query_positions, projected_keys, output_values)
        if self.config.per_position:
            cosines = F.cosine_similarity(query_positions.unsqueeze(0), aligned, dim=-1, eps=1e-8)
            return cosines.mean(-1).T
        # Frobenius inner products as one batched matrix product (an elementwise product over
        # [n_way, n_query, HW, C] was half of the head's time).
        inner = torch.bmm(aligned.flatten(2).transpose(0, 1),  # [n_query, n_way, HW·C]
                          query_positions.flatten(1).unsqueeze(-1)).squeeze(-1)
        norms = query_positions.norm(dim=(-1, -2))[:, None] * aligned.norm(dim=(-1, -2)).T
        return inner / norms.clamp(min=1e-8)


def class_positions(support: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Support maps [N, C, H, W] → per-class key rows [n_way, K·HW, C] (K shots per class)."""
    counts = torch.bincount(labels, minlength=n_way)
    if bool((counts != counts[0]).any()):
        raise ValueError(f"TRM needs the same number of shots per class, got {counts.tolist()}")
    order = torch.argsort(labels, stable=True)
    positions = support[order].flatten(2).transpose(1, 2)  # [N, HW, C]
    return positions.reshape(n_way, -1, positions.shape[-1])
