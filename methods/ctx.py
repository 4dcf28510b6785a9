"""CrossTransformers (CTX): Doersch, Gupta & Zisserman, "CrossTransformers: spatially-aware
few-shot transfer", NeurIPS 2020 (read with the reference code, google-research/meta-dataset,
``CrossTransformerLearner``).

For each query image x* and class c, with Φ the backbone's local descriptors (positions m of the
class's K support images j, positions p of the query):

    k_jm = Γ Φ(x_j)_m,   q_p = Γ Φ(x*)_p        (one linear key head: the paper's and the
                                                 reference code's shared query/key head)
    ã_jmp = softmax over all (j, m) of the class of  k_jm · q_p / √d_k   (jointly over shots)
    t_p = Σ_jm ã_jmp v_jm,   v_jm = Λ Φ(x_j)_m,   w_p = Λ Φ(x*)_p     (value head Λ)
    d(x*, c) = 1/(HW) Σ_p ‖t_p − w_p‖²,   logit = −d

i.e. the squared Euclidean distance summed over the value channels and averaged over the query's
positions, as in the reference code. Heads are 1×1 convolutions without bias (here: linear maps of
each position), d_k = d_v = 128. The paper used ResNet-34 on Meta-Dataset only; here the default is
Conv-64F (the attention needs a spatial map): 64×7×7 at 28×28, 64×21×21 at 84×84. With
``backbone=conv4`` a 28×28 image is a single position (attention then only weighs the K shots; at
1-shot CTX becomes ProtoNet on the value embedding); at 84×84, 5×5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from bench.methods._local import class_descriptors, descriptors, over_query_blocks
from bench.methods.backbones import BACKBONE_HELP
from bench.methods.base import FewShotClassifier, MethodConfig, param
from torch import nn

from bench.errors import BenchError
from bench.registry import METHODS


@METHODS.register("ctx")
class CrossTransformer(FewShotClassifier):
    """Query-aligned prototypes by attention over the class's support positions; −‖t − w‖²."""

    @dataclass(frozen=True)
    class Config(MethodConfig):
        backbone: str = param("conv64f", BACKBONE_HELP)
        key_dim: int = param(128, "d_k: width of the shared query/key head", positive=True)
        value_dim: int = param(128, "d_v: width of the value head", positive=True)
        scale: str = param("sqrt_dk", "attention logits × 1/√d_k (sqrt_dk, the paper) | none",
                           choices=("sqrt_dk", "none"))

        def validate(self) -> None:
            super().validate()
            for name in ("key_dim", "value_dim"):
                value = getattr(self, name)
                if not isinstance(value, int) or isinstance(value, bool):
                    raise BenchError(f"{name}={value!r} of ctx must be an integer ≥ 1")

    def __init__(self, config: Config, in_channels: int, channels: int | None = None):
        super().__init__(config, in_channels)
        channels = channels or self.feature_channels  # the backbone's (tests pass small ones)
        self.key_head = nn.Linear(channels, config.key_dim, bias=False)
        self.value_head = nn.Linear(channels, config.value_dim, bias=False)

    @property
    def scale(self) -> float:
        return 1.0 / math.sqrt(self.config.key_dim) if self.config.scale == "sqrt_dk" else 1.0

    def head(self, support, support_labels, query, n_way):
        positions = class_descriptors(support, support_labels, n_way, "ctx")  # [n_way, K·HW, C]
        keys, values = self.key_head(positions), self.value_head(positions)
        local = descriptors(query)  # [n_query, HW, C]
        hw = local.shape[1]

        def score(block: torch.Tensor) -> torch.Tensor:
            # Every class attends from the same query positions: the block's queries form one
            # sequence per class, so one fused attention call (no [.., HW, K·HW] weights kept,
            # in training too) covers every (query, class) pair; softmax over the K·HW keys.
            rows = block.reshape(1, -1, block.shape[-1])  # [1, block·HW, C]
            queries = self.key_head(rows).expand(n_way, -1, -1)
            aligned = F.scaled_dot_product_attention(queries, keys, values, scale=self.scale)
            distances = (aligned - self.value_head(rows)).pow(2).sum(-1)  # [n_way, block·HW]
            return -distances.view(n_way, len(block), hw).mean(-1).T

        # bytes per query image: its queries (expanded per class), aligned values, differences
        per_query = n_way * hw * (keys.shape[-1] + 3 * values.shape[-1]) * 4
        return over_query_blocks(score, local, per_query)
