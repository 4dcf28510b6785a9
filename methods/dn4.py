"""Deep Nearest Neighbor Neural Network (DN4): Li, Wang, Xu, Huo, Gao & Luo, "Revisiting Local
Descriptor based Image-to-Class Measure for Few-shot Learning", CVPR 2019.

No pooling into one vector: each position of a query's Conv-64F map is a local descriptor x_i; a
class c is the pool of all descriptors of its K support images. The image-to-class measure is

    Θ(q, c) = Σ_i Σ_{j=1..k} cos(x_i, x̂_i^j),   x̂_i^j: the k nearest (cosine) descriptors of c

(k = 3 in the paper), and those sums are the logits of the cross-entropy loss, unscaled, as in the
paper's code. Default backbone Conv-64F (the paper's): 64×7×7 maps at 28×28 (49 descriptors an
image), 64×21×21 at 84×84 (441). With ``backbone=conv4`` a 28×28 image leaves a single descriptor
(a 1-shot class then has fewer than k = 3 and the head refuses it); at 84×84, 5×5.

Deviation from the official code: its Conv-64F uses LeakyReLU(0.2) and convolutions without bias;
the default backbone here is the harness's Conv-64F (ReLU, biased convolutions), shared with trm,
cosine, ctx and can so that their comparisons differ in the head alone. ``backbone=conv64f_leaky``
is the official one (``dn4(backbone=conv64f_leaky)``: the official form of the whole method; the
head is the official one with either backbone).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from bench.methods._local import class_descriptors, descriptors, over_query_blocks
from bench.methods.backbones import BACKBONE_HELP
from bench.methods.base import FewShotClassifier, MethodConfig, param

from bench.errors import BenchError
from bench.registry import METHODS


@METHODS.register("dn4")
class DN4(FewShotClassifier):
    """Image-to-class k-NN: each query descriptor's top-k cosines to a class's pool, summed.

    The official DN4 backbone (LeakyReLU(0.2), bias-free convolutions) is
    ``dn4(backbone=conv64f_leaky)``; the default ``conv64f`` is the harness's shared Conv-64F.
    """

    @dataclass(frozen=True)
    class Config(MethodConfig):
        backbone: str = param("conv64f", BACKBONE_HELP)
        neighbors: int = param(3, "k nearest class descriptors summed per query descriptor",
                               positive=True)

        def validate(self) -> None:
            super().validate()
            if not isinstance(self.neighbors, int) or isinstance(self.neighbors, bool):
                raise BenchError(f"neighbors={self.neighbors!r} of dn4 must be an integer ≥ 1")

    def head(self, support, support_labels, query, n_way):
        classes = F.normalize(class_descriptors(support, support_labels, n_way, "dn4"), dim=-1)
        k = self.config.neighbors
        if k > classes.shape[1]:
            raise BenchError(f"dn4 neighbors={k} exceeds the {classes.shape[1]} descriptors of a "
                             f"class here: use backbone=conv64f (a spatial map), more shots, or "
                             f"neighbors≤{classes.shape[1]}")
        queries = F.normalize(descriptors(query), dim=-1)  # [n_query, HW, C]

        def score(block: torch.Tensor) -> torch.Tensor:
            cosines = torch.einsum("qpc,wmc->qwpm", block, classes)  # [q, n_way, HW, K·HW]
            return cosines.topk(k, dim=-1).values.sum(dim=(-1, -2))

        per_query = n_way * queries.shape[1] * classes.shape[1] * 4
        return over_query_blocks(score, queries, per_query)
