"""Cross Attention Network (Hou, Chang, Ma, Shan & Chen, NeurIPS 2019).

For every (query, class) pair, with P the class's mean support map and Q the query map (C × m
positions), the correlation map R_ij = cos(P_i, Q_j) (m × m) drives a cross-attention on each side.
The meta-fusion layer turns the column means of R (one value per query position) into a kernel
w = W_2 ReLU(BN(W_1 mean_i R_i·)) (1×1 convolutions m → m/6 → m), and the class attention is
    A^p_i = 1 + softmax_i( mean_j R_ij w_j / τ ),   τ = 0.025,
weighting P's positions; the query side does the same with Rᵀ. A query's logit for the class is
7 · cos(GAP(A^q ⊙ Q), GAP(A^p ⊙ P)) (the reference code's scale 7). R = P̂ᵀQ̂ has rank ≤ C, so
both sums over it are taken from the unit-norm features and R itself is never formed (at 84×84 it
would be 375 × 441 × 441 floats a step; forming it makes a step 2.8× slower).

Training classifies every position of the attended query map against the attended class means
(7 · cos, cross-entropy over the episode's classes; the paper's L1). The auxiliary global
classification loss (``global_loss`` = w > 0; the paper's L2) classifies every position of the
query map attended by its own class among all base classes (a 1×1 conv), and the loss becomes
λ·L1 + w·L2 with the paper's λ = 0.5 (the paper and its code: w = 1). It is off by default, so that
CAN trains on episodes alone like the other methods. The transductive iteration of the paper is
not implemented. Default backbone Conv-64F (7×7 maps at 28×28, 21×21 at 84×84); the paper uses
ResNet-12 (6×6 there). The meta-fusion layer is sized by the number of positions, so the model is
built for one image size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from bench.methods.backbones import BACKBONE_HELP
from bench.methods.base import FewShotClassifier, MethodConfig, full_precision, param, prototypes
from torch import nn

from bench.errors import BenchError
from bench.registry import METHODS

ATTENTION_TEMPERATURE = 0.025
SCALE = 7.0
METRIC_WEIGHT = 0.5  # λ of λ·L1 + w·L2, when the global loss is on


class MetaFusion(nn.Module):
    """Kernel from the correlation map's means, then the attention over one side's positions."""

    def __init__(self, positions: int, reduction: int = 6):
        super().__init__()
        hidden = max(1, positions // reduction)
        self.squeeze = nn.Conv1d(positions, hidden, 1)
        self.norm = nn.BatchNorm1d(hidden)
        self.expand = nn.Conv1d(hidden, positions, 1)
        for conv in (self.squeeze, self.expand):  # the reference initialisation
            nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / conv.out_channels))

    def forward(self, side: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """Attention [pairs, m_a] over one side's positions, from the correlation map
        R_ij = side_i · other_j of unit-norm features side [pairs, C, m_a], other [pairs, C, m_b].

        R has rank ≤ C, so it is never formed: mean_i R_ij = (mean_i side_i) · other_j and
        mean_j R_ij w_j = side_i · (mean_j w_j other_j). At 84×84 R is 75·5 × 441 × 441 floats
        (292 MB), and the products over it made the training step memory-bound.
        """
        means = torch.bmm(side.mean(-1).unsqueeze(1), other).transpose(1, 2)  # [pairs, m_b, 1]
        kernel = self.expand(F.relu(self.norm(self.squeeze(means))))  # channels are positions
        pooled = torch.bmm(other, kernel) / other.shape[-1]  # [pairs, C, 1]
        weighted = torch.bmm(pooled.transpose(1, 2), side).squeeze(1)  # mean_j R_ij w_j
        return F.softmax(weighted / ATTENTION_TEMPERATURE, dim=-1) + 1


@METHODS.register("can")
class CrossAttentionNetwork(FewShotClassifier):
    """Cross-attention from the class/query correlation map, cosine of the attended features."""

    build_needs: ClassVar[tuple[str, ...]] = ("n_base_classes", "image_size")

    @dataclass(frozen=True)
    class Config(MethodConfig):
        backbone: str = param("conv64f", BACKBONE_HELP)
        global_loss: float = param(0.0, "weight w of the auxiliary global classification loss "
                                        "over the base classes (0: off; on: 0.5·L_metric + "
                                        "w·L_global, paper w = 1)")

        def validate(self) -> None:
            super().validate()
            if not self.global_loss >= 0:
                raise BenchError(f"global_loss={self.global_loss} of can must be ≥ 0 (0: off)")

    def __init__(self, config, in_channels, n_base_classes=None, image_size=None):
        super().__init__(config, in_channels)
        if image_size is None:
            raise BenchError("can needs the image size to size its meta-fusion layer; build it "
                             "with bench.core.model.build_model(..., image_size=...)")
        self.fusion = MetaFusion(self.map_positions(in_channels, image_size))
        self.classifier = None
        if config.global_loss > 0:
            if not n_base_classes:
                raise BenchError("can with global_loss > 0 needs the number of base classes")
            self.classifier = nn.Conv2d(self.feature_channels, n_base_classes, 1)

    @torch.no_grad()
    def map_positions(self, in_channels: int, image_size: int) -> int:
        self.backbone.eval()
        probe = self.embed(torch.zeros(1, in_channels, image_size, image_size))
        self.backbone.train()
        return probe.shape[2] * probe.shape[3]

    def attended(self, support, support_labels, query, n_way):
        """Attended class maps and query maps, each [n_query, n_way, C, m]."""
        classes = prototypes(support.flatten(1), support_labels, n_way).view(
            n_way, *support.shape[1:]).flatten(2)
        queries = query.flatten(2)
        n_query, (channels, m) = len(queries), queries.shape[1:]
        pairs = (n_query, n_way, channels, m)  # every (query, class) pair, each side unit-norm
        unit_classes = F.normalize(classes, dim=1).unsqueeze(0).expand(pairs)
        unit_queries = F.normalize(queries, dim=1).unsqueeze(1).expand(pairs)
        unit_classes, unit_queries = (side.reshape(-1, channels, m)
                                      for side in (unit_classes, unit_queries))
        class_attention = self.fusion(unit_classes, unit_queries).view(n_query, n_way, 1, m)
        query_attention = self.fusion(unit_queries, unit_classes).view(n_query, n_way, 1, m)
        return (classes.unsqueeze(0) * class_attention, queries.unsqueeze(1) * query_attention)

    @staticmethod
    def logits(classes: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        return SCALE * F.cosine_similarity(queries.mean(-1), classes.mean(-1), dim=-1, eps=1e-12)

    def head(self, support, support_labels, query, n_way):
        return self.logits(*self.attended(support, support_labels, query, n_way))

    def training_loss(self, episode):
        classes, queries = self.attended(episode.support, episode.support_labels, episode.query,
                                         episode.n_way)
        logits = full_precision(self.logits(classes, queries))
        dense = SCALE * (F.normalize(queries, dim=2) *
                         F.normalize(classes.mean(-1), dim=-1).unsqueeze(-1)).sum(2)
        targets = episode.query_labels
        metric = F.cross_entropy(full_precision(dense),
                                 targets[:, None].expand(-1, dense.shape[-1]))
        if self.classifier is None:
            return metric, logits
        if episode.base_labels is None:
            raise BenchError("can's global loss needs the base-class labels of the episode")
        own = queries[torch.arange(len(targets)), targets]  # [n_query, C, m]
        scores = self.classifier(own.unsqueeze(-1)).squeeze(-1)  # [n_query, n_base, m]
        base = episode.base_labels[len(episode.support_labels):]
        global_term = F.cross_entropy(full_precision(scores),
                                      base[:, None].expand(-1, scores.shape[-1]))
        return METRIC_WEIGHT * metric + self.config.global_loss * global_term, logits
