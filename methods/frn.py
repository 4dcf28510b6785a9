"""Feature Map Reconstruction Networks (FRN): Wertheimer, Tang & Hariharan, "Few-Shot
Classification with Feature Map Reconstruction Networks", CVPR 2021 (read with the official code,
Tsingularity/FRN, ``models/FRN.py``).

Each class's K support maps give S_c: its K·r local descriptors (r = HW) as rows, d channels. Every
query descriptor row of Q is reconstructed from them by closed-form ridge regression:

    Q̂_c = ρ · Q S_c^T (S_c S_c^T + λI)^{-1} S_c  =  ρ · Q (S_c^T S_c + λI)^{-1} S_c^T S_c
    λ = (K·r / d) · e^α,   ρ = e^β        (α, β learned, both 0 at the start)
    logit_c = −γ · 1/r Σ_p ‖q_p − q̂_p‖²   (γ learned, 1 at the start)

The two forms are equal (Woodbury/push-through identity); the head inverts the smaller matrix,
K·r × K·r when K·r ≤ d (eq. 8 of the paper), d × d otherwise (eq. 10). As in the official code
the squared error is summed over channels and averaged over the r positions, λ gets +1e-6, γ is a
plain (unconstrained) scalar, and features are not rescaled for Conv-4. The solve runs in float32
even under bf16 autocast. Pre-training is the core's ``--pretrain-epochs`` (a linear classifier
over the base classes, not the official pre-training's reconstruction head).

Option ``aux`` (0: off) adds the official training's auxiliary term, which pushes the classes'
support subspaces apart (``auxrank`` in the official ``trainers/frn_train.py``, weight 0.03 there):

    aux · Σ_{i>j} ‖Ŝ_i Ŝ_jᵀ‖_F²,   Ŝ = S / ‖S‖_F over the whole episode's support descriptors

(one norm for the whole [n_way, K·r, d] tensor, as the official ``support.norm(2)`` takes it, not a
norm per descriptor). The paper mentions it only in passing; it is off by default, so the committed
reference cells stay what they were.

Shots: ρ = e^β is learned at the training shot. A 1-shot-trained ρ > 1 inverts a 5-shot test,
where the true class reconstructs the query almost exactly and its error becomes (ρ − 1)²‖q‖²;
the official code trains one model per test shot (`--train-shot`). See
results/reference/mini-imagenet-cpu/README.md and benchmarks/frn_rho_shot.py.

Default backbone Conv-4, the paper's: 64×5×5 maps at 84×84 (r = 25), 64×1×1 at 28×28 (r = 1: a
query is then reconstructed from the K support vectors only, rank ≤ K). ``backbone=conv64f``
gives 64×7×7 at 28×28 and 64×21×21 at 84×84.

Deviation from the official code, an option: with ``backbone=resnet12`` the official code divides
the feature maps by √640 before the reconstruction (``get_feature_map``: a reparametrisation that
changes where α and γ start: the errors shrink 640-fold, λ's share of the Gram matrix grows
640-fold). Not done by default, so the stored resnet12 frn cells keep their meaning (a different
starting point of the same model family); ``frn(backbone=resnet12,resnet_scale=true)`` does it,
the head then reading every support and query map as map / √640 (the auxiliary term is
unchanged: it normalises the support tensor). Conv-4 maps are not scaled in the official code, and
``resnet_scale=true`` with another backbone is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from bench.methods._local import class_descriptors, descriptors, over_query_blocks
from bench.methods.backbones import BACKBONE_HELP
from bench.methods.base import (
    FewShotClassifier,
    MethodConfig,
    TrainingEpisode,
    full_precision,
    param,
)
from torch import nn

from bench.errors import BenchError
from bench.registry import METHODS

RIDGE_EPSILON = 1e-6  # added to λ, as in the official code


@METHODS.register("frn")
class FeatureMapReconstruction(FewShotClassifier):
    """Ridge reconstruction of the query map from each class's support positions; −γ·error."""

    @dataclass(frozen=True)
    class Config(MethodConfig):
        backbone: str = param("conv4", BACKBONE_HELP)
        alpha: float = param(0.0, "initial α: λ = (K·HW/d)·e^α (learned)")
        beta: float = param(0.0, "initial β: ρ = e^β (learned)")
        gamma: float = param(1.0, "initial γ: logit = −γ · mean reconstruction error (learned)")
        aux: float = param(0.0, "weight of the official code's auxiliary loss Σ_{i>j} "
                                "‖Ŝ_i Ŝ_jᵀ‖_F² over the classes' support descriptors (0: off; "
                                "official 0.03)")
        resnet_scale: bool = param(False, "divide ResNet-12 maps by √640 before the "
                                          "reconstruction, as the official code (backbone="
                                          "resnet12 only)")
        # the ids of earlier cells stay valid
        OMITTED_AT_DEFAULT: ClassVar[tuple[str, ...]] = ("aux", "resnet_scale")

        def validate(self) -> None:
            super().validate()
            if not self.aux >= 0:
                raise BenchError(f"aux={self.aux} of frn must be ≥ 0 (0: off, official 0.03)")
            if not self.gamma > 0:  # −γ·error with γ ≤ 0 rewards the worst reconstruction
                raise BenchError(f"gamma={self.gamma} of frn must be > 0: the logit is −γ · "
                                 "reconstruction error (official 1.0)")
            if not isinstance(self.resnet_scale, bool):
                raise BenchError(f"resnet_scale={self.resnet_scale!r} of frn must be true or "
                                 "false")
            if self.resnet_scale and self.backbone != "resnet12":
                raise BenchError(f"resnet_scale=true of frn divides ResNet-12 maps by √640 (the "
                                 f"official code scales no other backbone); backbone="
                                 f"{self.backbone} is not resnet12")

    def __init__(self, config: Config, in_channels: int):
        super().__init__(config, in_channels)
        self.alpha = nn.Parameter(torch.tensor(float(config.alpha)))
        self.beta = nn.Parameter(torch.tensor(float(config.beta)))
        self.gamma = nn.Parameter(torch.tensor(float(config.gamma)))
        # the official ResNet-12 scaling (1/√640), else 1
        self.map_scale = self.feature_channels ** -0.5 if config.resnet_scale else 1.0

    def reconstruction_maps(self, classes: torch.Tensor) -> torch.Tensor:
        """P_c [n_way, d, d] with Q̂_c = ρ · Q P_c, from the class descriptors [n_way, K·r, d]."""
        rows, d = classes.shape[1:]
        lam = rows / d * self.alpha.exp() + RIDGE_EPSILON
        transposed = classes.transpose(1, 2)  # [n_way, d, K·r]
        if rows <= d:  # eq. 8: invert the K·r × K·r Gram matrix
            gram = classes @ transposed + lam * torch.eye(rows, device=classes.device)
            return transposed @ torch.linalg.solve(gram, classes)
        scatter = transposed @ classes  # eq. 10: invert the d × d matrix
        return torch.linalg.solve(scatter + lam * torch.eye(d, device=classes.device), scatter)

    def head(self, support, support_labels, query, n_way):
        with torch.autocast(support.device.type, enabled=False):
            support, query = full_precision(support), full_precision(query)
            if self.map_scale != 1.0:
                support, query = support * self.map_scale, query * self.map_scale
            classes = class_descriptors(support, support_labels, n_way, "frn")
            maps = self.reconstruction_maps(classes) * self.beta.exp()  # ρ P_c
            local = descriptors(query)  # [n_query, r, d]

            def score(block: torch.Tensor) -> torch.Tensor:
                rebuilt = torch.einsum("qpd,cde->qcpe", block, maps)  # [q, n_way, r, d]
                error = (rebuilt - block[:, None]).pow(2).sum(-1).mean(-1)  # [q, n_way]
                return -self.gamma * error

            per_query = 2 * n_way * local.shape[1] * local.shape[2] * 4
            return over_query_blocks(score, local, per_query)

    def loss(self, logits: torch.Tensor, episode: TrainingEpisode) -> torch.Tensor:
        metric = super().loss(logits, episode)
        if self.config.aux == 0:
            return metric
        with torch.autocast(episode.support.device.type, enabled=False):
            classes = class_descriptors(full_precision(episode.support),
                                        episode.support_labels,
                                        episode.n_way, "frn")
            return metric + self.config.aux * subspace_overlap(classes)


def subspace_overlap(classes: torch.Tensor) -> torch.Tensor:
    """Σ_{i>j} ‖Ŝ_i Ŝ_jᵀ‖_F² of class descriptors [n_way, K·r, d], Ŝ = S / ‖S‖_F (one norm for
    the whole tensor, as the official auxrank). Computed as ⟨Ŝ_iᵀŜ_i, Ŝ_jᵀŜ_j⟩_F, the same
    number from d × d matrices, not the [n_way², K·r, K·r] products."""
    unit = classes / classes.norm()
    scatter = unit.transpose(1, 2) @ unit  # [n_way, d, d]
    pairs = torch.einsum("ide,jde->ij", scatter, scatter)  # [n_way, n_way]
    return pairs.tril(-1).sum()
