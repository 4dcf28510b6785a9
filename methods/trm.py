"""Task-related metric (TRM), patent CN 114943859 B; docs/trm.md maps every statement of the text.

For every (query, class) pair the class's support feature map is re-arranged to align with the
query by cross-attention (queries from the query image, keys and values from the class's support
positions), projected back to C channels, and compared with the query by cosine:

    Q' = F_q W_q,  K' = F_s W_k,  V' = F_s W_v                      (formula 1)
    F_A = α V' W_o,  α = N(Q' K'^T / sqrt(C))                        (formula 2, step S307)
    logit_c = τ · cos(F_q, F_A^(c))  (Frobenius; or mean per-position cosine)   (formula 3)

N is the row-and-column normalisation of the text by default (``normalize=dual``: row softmax ⊙
column softmax), or the row softmax, or Sinkhorn iterations. All (query, class) pairs of an
episode go through batched attention calls, chunked over queries so that the attention weights
stay under ``max_attn_mib``, in training as in inference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from bench.methods._attention import ATTENTION, WEIGHT_COPIES
from bench.methods.base import FewShotClassifier, MethodConfig, Temperature, param
from torch import nn

from bench.errors import BenchError
from bench.registry import METHODS

# The explicit (dual, sinkhorn) weights are computed in blocks of at most this many bytes per
# thread (query images, and key sets when one query image's are larger), so that their passes
# over the weights stay in the CPU's L2 caches (2 MiB a core here): against 32 MiB blocks, 1.3×
# faster at 84×84 (benchmarks/trm_dual_cost.py); max_attn_mib bounds them further.
EXPLICIT_BLOCK_BYTES = 2 << 20
BACKBONE_CHANNELS = 64


@METHODS.register("trm")
class TaskRelatedMetric(FewShotClassifier):
    """Cross-attention aligns each class's support map with the query; cosine scores the pair."""

    @dataclass(frozen=True)
    class Config(MethodConfig):
        backbone: str = param("conv64f", "embedding network: conv4 | conv64f")
        attn_dim: int = param(64, "width d of the Q/K/V projections")
        normalize: str = param("dual", "α: dual (row ⊙ column softmax, the text) | row | sinkhorn",
                               choices=("dual", "row", "sinkhorn"))
        sinkhorn_iters: int = param(3, "column/row normalisation rounds of normalize=sinkhorn")
        shots: str = param("concat", "K-shot keys: concat (K·HW positions) | mean_map | per_shot",
                           choices=("concat", "mean_map", "per_shot"))
        scale: str = param("channels", "score scale: channels (1/√C, the text) | attn_dim (1/√d)",
                           choices=("channels", "attn_dim"))
        embed_dim: int = param(0, "width C of a per-position linear layer after the backbone "
                                  "(0: none)")
        per_position: bool = param(False, "mean of per-position cosines, not whole-map cosine")
        init: str = param("identity", "identity (W_q=W_k=W_v=A, W_o=Aᵀ, AᵀA=I) | random",
                          choices=("identity", "random"))
        temperature: str = param("learned", "logit scale τ: learned | fixed (1.0 = patent text)",
                                 choices=("learned", "fixed"))
        tau: float = param(10.0, "initial (or fixed) value of τ", positive=True)
        max_attn_mib: int = param(2048, "memory bound of the attention weights; chunks queries")

        def validate(self) -> None:
            super().validate()  # the choices and positive numbers declared above
            for name in ("attn_dim", "max_attn_mib", "sinkhorn_iters"):
                if getattr(self, name) < 1:
                    raise BenchError(f"{name} of trm must be a positive integer, got "
                                     f"{getattr(self, name)}; e.g. {name}="
                                     f"{type(self).__dataclass_fields__[name].default}")
            if self.embed_dim < 0:
                raise BenchError(f"embed_dim of trm must be 0 (none) or positive, got "
                                 f"{self.embed_dim}")

    def __init__(self, config: Config, in_channels: int, channels: int = BACKBONE_CHANNELS):
        super().__init__(config, in_channels)
        self.embedding_fc = (nn.Conv2d(channels, config.embed_dim, 1) if config.embed_dim
                             else None)
        self.channels = config.embed_dim or channels
        self.w_q = nn.Linear(self.channels, config.attn_dim, bias=False)
        self.w_k = nn.Linear(self.channels, config.attn_dim, bias=False)
        self.w_v = nn.Linear(self.channels, config.attn_dim, bias=False)
        self.w_o = nn.Linear(config.attn_dim, self.channels, bias=False)
        if config.init == "identity":
            self.init_identity()
        self.temperature = Temperature(config.tau, learned=config.temperature == "learned")

    @torch.no_grad()
    def init_identity(self) -> None:
        """W_q = W_k = W_v = A and W_o = Aᵀ for a random A with orthonormal columns (rows when
        d < C): untrained, F_A is a similarity-weighted average of the class's own support
        features (W_v W_o = I), instead of a random mix of channels."""
        shared = nn.init.orthogonal_(torch.empty_like(self.w_v.weight))  # [d, C]
        for layer in (self.w_q, self.w_k, self.w_v):
            layer.weight.copy_(shared)
        self.w_o.weight.copy_(shared.T)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        features = super().embed(images)
        return self.embedding_fc(features) if self.embedding_fc is not None else features

    def head(self, support, support_labels, query, n_way):
        maps = class_maps(support, support_labels, n_way)  # [n_way, K, HW, C]
        keys = {"concat": maps.flatten(1, 2), "mean_map": maps.mean(1),
                "per_shot": maps.flatten(0, 1)}[self.config.shots]  # [G, L, C]
        query_positions = query.flatten(2).transpose(1, 2)  # [n_query, HW, C]
        projected_keys = self.w_k(keys)
        # W_o is linear, so (α V') W_o = α (V' W_o): projecting the values once per key set
        # instead of every aligned map once per (query, class) pair gives the same F_A.
        output_values = self.w_o(self.w_v(keys))  # [G, L, C]
        chunk = self.query_chunk_size(query_positions.shape[1], keys.shape[1], len(keys),
                                      query.element_size(), query.device)
        cosines = torch.cat([
            self.cosine_to_aligned(block, projected_keys, output_values)
            for block in query_positions.split(chunk)
        ])  # [n_query, G]
        if self.config.shots == "per_shot":  # one alignment per shot, the K cosines averaged
            cosines = cosines.view(len(query), n_way, -1).mean(-1)
        return self.temperature(cosines)

    def query_chunk_size(self, query_hw: int, key_rows: int, key_sets: int,
                         element_size: int = 4, device=torch.device("cpu")) -> int:
        normalize = self.config.normalize
        bytes_per_query = key_sets * query_hw * key_rows * max(element_size, 4)
        bound = (self.config.max_attn_mib << 20) // (bytes_per_query * WEIGHT_COPIES[normalize])
        if normalize != "row":
            bound = min(bound, explicit_block_bytes(device) // bytes_per_query)
        return max(1, bound)

    @property
    def scale(self) -> float:
        width = self.channels if self.config.scale == "channels" else self.config.attn_dim
        return 1.0 / math.sqrt(width)

    def aligned_support(self, query_positions, projected_keys, output_values):
        """F_A [G, n_query, HW, C]: each key set re-arranged for each query."""
        n_query, hw, _ = query_positions.shape
        # Every key set sees the same query positions: all the block's queries form one
        # sequence per key set, so one batched call covers every (query, key set) pair.
        q = (self.w_q(query_positions) * self.scale).reshape(1, n_query * hw, -1)
        attend = ATTENTION[self.config.normalize]
        # bytes of one key set's weights (softmaxes run in at least float32)
        per_set = n_query * hw * projected_keys.shape[1] * max(q.element_size(), 4)
        sets = (len(projected_keys) if self.config.normalize == "row"
                else max(1, explicit_block_bytes(q.device) // per_set))
        aligned = torch.cat([
            attend(q.expand(len(keys), -1, -1), keys, values, hw, self.config.sinkhorn_iters)
            for keys, values in zip(projected_keys.split(sets), output_values.split(sets))])
        return aligned.view(len(projected_keys), n_query, hw, -1)

    def cosine_to_aligned(self, query_positions, projected_keys, output_values):
        """cos(F_q, F_A) for every query of the block and every key set: [n_query, G]."""
        aligned = self.aligned_support(query_positions, projected_keys, output_values)
        if self.config.per_position:
            cosines = F.cosine_similarity(query_positions.unsqueeze(0), aligned, dim=-1, eps=1e-8)
            return cosines.mean(-1).T
        # Frobenius inner products as one batched matrix product (an elementwise product over
        # [G, n_query, HW, C] was half of the head's time).
        inner = torch.bmm(aligned.flatten(2).transpose(0, 1),  # [n_query, G, HW·C]
                          query_positions.flatten(1).unsqueeze(-1)).squeeze(-1)
        norms = query_positions.norm(dim=(-1, -2))[:, None] * aligned.norm(dim=(-1, -2)).T
        return inner / norms.clamp(min=1e-8)


def explicit_block_bytes(device: torch.device) -> int:
    """The explicit paths' block size: cache-sized on the CPU; on a GPU only max_attn_mib bounds
    the blocks (small blocks would cost a kernel launch each)."""
    if device.type != "cpu":
        return 1 << 62
    return EXPLICIT_BLOCK_BYTES * torch.get_num_threads()


def class_maps(support: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Support maps [N, C, H, W] → per-class position rows [n_way, K, HW, C] (K shots each)."""
    counts = torch.bincount(labels, minlength=n_way)
    if bool((counts != counts[0]).any()):
        raise ValueError(f"TRM needs the same number of shots per class, got {counts.tolist()}")
    order = torch.argsort(labels, stable=True)
    positions = support[order].flatten(2).transpose(1, 2)  # [N, HW, C]
    return positions.reshape(n_way, -1, *positions.shape[1:])
