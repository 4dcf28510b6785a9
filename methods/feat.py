"""FEAT (Ye, Hu, Zhan & Sha, "Few-Shot Learning via Embedding Adaptation with Set-to-Set
Functions", CVPR 2020).

The class prototypes (means of the globally pooled support features) are adapted together by a
set-to-set function, a Transformer layer: single-head self-attention over the n_way prototypes,
    Q, K, V = P W_q, P W_k, P W_v;   A = softmax(Q Kᵀ / √d) (dropout 0.1 on A);
    P' = LayerNorm(P + dropout_0.5(A V W_o + b_o)),
and each query is classified by −‖q − p'_c‖² / temperature (64, FEAT's setting). The contrastive
regulariser (``balance`` > 0) adapts, for each class, the set of its support and query
instances with the same layer, takes the adapted set's mean as that class's centre, and adds
``balance`` × the cross-entropy of every instance (support and query, not adapted) against the
centres by −‖x − c‖² / ``temperature2``; FEAT's ConvNet script uses balance 1, temperature2 16.
The reference initialisation: W_q, W_k, W_v ~ N(0, 2 / (d + d)), W_o Xavier-normal.

Deviations from the official code, each an option: the feature map is averaged over its positions
by default, where the official ConvNet encoder ends in a 5×5 max-pool (``pool=max``; on random
maps the two disagree on about a fifth of argmax decisions); the defaults copy FEAT's 1-shot
temperatures (temperature 64, temperature2 16) with the regulariser off (balance 0; the 1-shot
script's is 1), and its 5-shot ConvNet script uses temperature 32, balance 0.1 and temperature2
64: ``feat(temperature=32,balance=0.1,temperature2=64)`` (set them for 5-shot cells). The
official ConvNet forms in full: 1-shot ``feat(balance=1,pool=max)``, 5-shot
``feat(temperature=32,balance=0.1,temperature2=64,pool=max)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from bench.methods.backbones import BACKBONE_HELP
from bench.methods.base import (
    FewShotClassifier,
    MethodConfig,
    full_precision,
    global_pool,
    param,
    prototypes,
    squared_euclidean_logits,
)
from torch import nn

from bench.registry import METHODS


class SetAttention(nn.Module):
    """FEAT's single-head Transformer layer over a batch of sets [B, N, d]."""

    def __init__(self, dim: int, dropout: float = 0.5, attention_dropout: float = 0.1):
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        for layer in (self.query, self.key, self.value):
            nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0 / (dim + dim)))
        self.out = nn.Linear(dim, dim)
        nn.init.xavier_normal_(self.out.weight)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.attention_dropout = nn.Dropout(attention_dropout)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, sets: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.query(sets) @ self.key(sets).transpose(1, 2) * self.scale,
                                dim=-1)
        attended = self.attention_dropout(weights) @ self.value(sets)
        return self.norm(sets + self.dropout(self.out(attended)))


@METHODS.register("feat")
class FEAT(FewShotClassifier):
    """Prototypes adapted by a set-to-set Transformer, then −‖q − p'‖² / temperature.

    The defaults are FEAT's 1-shot temperatures (64; regulariser's 16) with its regulariser off.
    FEAT's official 5-shot ConvNet settings are temperature 32, balance 0.1 and temperature2 64:
    ``feat(temperature=32,balance=0.1,temperature2=64)``. The official ConvNet forms in full
    (``pool=max``: the encoder's final max-pool): 1-shot ``feat(balance=1,pool=max)``, 5-shot
    ``feat(temperature=32,balance=0.1,temperature2=64,pool=max)``.
    """

    @dataclass(frozen=True)
    class Config(MethodConfig):
        backbone: str = param("conv4", BACKBONE_HELP)
        temperature: float = param(64.0, "logits = −‖q − p'‖² / temperature (FEAT: 64)",
                                   positive=True)
        balance: float = param(0.0, "weight of the contrastive regulariser (0: off; FEAT's "
                                    "ConvNet script: 1)")
        temperature2: float = param(16.0, "temperature of the regulariser's logits (FEAT's "
                                          "ConvNet script: 16)", positive=True)
        pool: str = param("avg", "pooling of the feature map into the embedding: avg (mean "
                                 "over positions) | max (the official ConvNet encoder ends in "
                                 "MaxPool2d(5): the max over positions)", choices=("avg", "max"))
        OMITTED_AT_DEFAULT: ClassVar[tuple[str, ...]] = ("pool",)  # earlier ids stay valid

        def validate(self) -> None:
            super().validate()
            from bench.errors import BenchError

            if not self.balance >= 0:
                raise BenchError(f"balance={self.balance} of feat must be ≥ 0 (0: off)")

    def __init__(self, config, in_channels):
        super().__init__(config, in_channels)
        self.adapt = SetAttention(self.feature_channels)

    def embedding(self, features: torch.Tensor) -> torch.Tensor:
        """[N, C] from feature maps [N, C, H, W]: their mean (default) or max over positions."""
        if self.config.pool == "max":
            return features.amax((2, 3))
        return global_pool(features)

    def head(self, support, support_labels, query, n_way):
        protos = prototypes(self.embedding(support), support_labels, n_way)
        adapted = self.adapt(protos.unsqueeze(0)).squeeze(0)
        return squared_euclidean_logits(self.embedding(query), adapted) / self.config.temperature

    def training_loss(self, episode):
        loss, logits = super().training_loss(episode)
        if self.config.balance > 0:
            loss = loss + self.config.balance * self.regulariser(episode)
        return loss, logits

    def regulariser(self, episode) -> torch.Tensor:
        """Cross-entropy of every instance against the centres of its class's adapted set."""
        instances = torch.cat([self.embedding(episode.support), self.embedding(episode.query)])
        labels = torch.cat([episode.support_labels, episode.query_labels])
        order = torch.argsort(labels, stable=True)  # class-major: [n_way, instances, d]
        sets = instances[order].view(episode.n_way, -1, instances.shape[1])
        centres = self.adapt(sets).mean(1)
        logits = squared_euclidean_logits(instances, centres) / self.config.temperature2
        return F.cross_entropy(full_precision(logits), labels)
