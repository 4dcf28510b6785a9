"""Relation Network (Sung, Yang, Zhang, Xiang, Torr & Hospedales, CVPR 2018).

The embedding keeps a spatial map (Conv-64F: Conv-4 without its last two pools, as the paper's
encoder). A class's feature map is the sum of its support maps (the paper's K-shot rule); every
(query, class) pair concatenates the class map and the query map along channels, and the
relation module scores it: two blocks of 3×3 conv 64 + BN + ReLU + 2×2 max-pool, then
FC 64 → 8 + ReLU, FC 8 → 1 and a sigmoid, the relation score r ∈ (0, 1). Training regresses the
scores on the one-hot targets with the mean squared error (``loss=mse``, as published);
``loss=ce`` trains the pre-sigmoid scores with cross-entropy instead (Chen et al. 2019's
"relationnet_softmax").

Shapes: at 28×28 the maps are 64×7×7 and the relation blocks take them to 3×3, then 1×1, so the
FC input is 64, the paper's Omniglot size. At 84×84 (64×21×21 → 10×10 → 5×5) the map is averaged
to 64 values before the FC; the paper's unpadded convolutions give 3×3 there and flatten it into
576 inputs. The average keeps one module for every image size.

Deviation from the official code, an option: the official test never calls ``eval()``, so every
BatchNorm, the encoder's and the relation module's, normalises by the test episode's own batch
statistics (the support images embedded as one batch, the query images as another, all
(class, query) pairs as one batch of the relation module). By default evaluation here is in eval
mode, with the running statistics, as for every method of the harness. ``test_bn=batch``
(``relationnet(test_bn=batch)``) evaluates as the official code: every BatchNorm in training
mode for the episode, on those three batches, its running statistics left as they were (the
official momentum of 1 would overwrite them with the last batch's, which its test never reads).
Its scores are then transductive (a query's score depends on the episode's other queries) and
evaluation embeds each episode's images on their own (``needs_images``): slower, no cache. The
head alone (``head``, in eval mode) applies it to the relation module. Training is unchanged:
one batch of the episode's support and query images (the official code embeds them as two).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from bench.methods.backbones import BACKBONE_HELP
from bench.methods.base import FewShotClassifier, MethodConfig, param
from torch import nn

from bench.registry import METHODS


def relation_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True), nn.MaxPool2d(2))


def class_sums(features: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Sum of each class's support maps: [n_way, C, H, W]."""
    sums = torch.zeros(n_way, *features.shape[1:], dtype=features.dtype, device=features.device)
    return sums.index_add_(0, labels, features)


@contextmanager
def batch_statistics(module: nn.Module):
    """Within: every BatchNorm of ``module`` normalises by its input batch's statistics, as in
    training, and leaves its running statistics (and batch count) untouched; restored after."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.track_running_stats) for m in norms]
    try:
        for norm in norms:  # training without tracking: batch statistics, no update
            norm.training, norm.track_running_stats = True, False
        yield
    finally:
        for norm, (training, tracking) in zip(norms, saved):
            norm.training, norm.track_running_stats = training, tracking


@METHODS.register("relationnet")
class RelationNet(FewShotClassifier):
    """Learned relation module on concatenated (class, query) feature maps; MSE on one-hot."""

    @dataclass(frozen=True)
    class Config(MethodConfig):
        backbone: str = param("conv64f", BACKBONE_HELP)
        loss: str = param("mse", "training loss: mse (sigmoid scores vs one-hot, as published) "
                                 "| ce (cross-entropy of the pre-sigmoid scores)",
                          choices=("mse", "ce"))
        hidden: int = param(8, "width of the relation module's first FC layer (paper: 8)",
                            positive=True)
        test_bn: str = param("running", "BatchNorm statistics in evaluation: running (eval "
                                        "mode) | batch (each test episode's own, as the "
                                        "official test; running statistics untouched)",
                             choices=("running", "batch"))
        OMITTED_AT_DEFAULT: ClassVar[tuple[str, ...]] = ("test_bn",)  # earlier ids stay valid

    def __init__(self, config, in_channels):
        super().__init__(config, in_channels)
        width = self.feature_channels
        self.blocks = nn.Sequential(relation_block(2 * width, 64), relation_block(64, 64))
        self.fc1 = nn.Linear(64, config.hidden)
        self.fc2 = nn.Linear(config.hidden, 1)

    def relation_scores(self, classes: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid relation scores [n_query, n_way] of class maps and query maps."""
        n_query, n_way = len(query), len(classes)
        pairs = torch.cat([classes.unsqueeze(0).expand(n_query, -1, -1, -1, -1),
                           query.unsqueeze(1).expand(-1, n_way, -1, -1, -1)], dim=2)
        maps = self.blocks(pairs.flatten(0, 1)).mean((2, 3))
        return self.fc2(F.relu(self.fc1(maps))).view(n_query, n_way)

    @property
    def needs_images(self) -> bool:
        """With test_bn=batch the encoder's statistics are the episode's: no embedding cache."""
        return self.config.test_bn == "batch"

    def episode_statistics(self) -> bool:
        """Whether BatchNorm takes the episode's own statistics now (evaluation, test_bn=batch)."""
        return not self.training and self.config.test_bn == "batch"

    def forward(self, support_images, support_labels, query_images, n_way=None):
        if not self.episode_statistics():
            return super().forward(support_images, support_labels, query_images, n_way)
        n_way = n_way if n_way is not None else int(support_labels.max()) + 1
        with batch_statistics(self.backbone):  # two batches, as the official test embeds them
            support, query = self.embed(support_images), self.embed(query_images)
        return self.head(support, support_labels, query, n_way)

    def head(self, support, support_labels, query, n_way):
        classes = class_sums(support, support_labels, n_way)
        if self.episode_statistics():
            with batch_statistics(self.blocks):
                scores = self.relation_scores(classes, query)
        else:
            scores = self.relation_scores(classes, query)
        return torch.sigmoid(scores) if self.config.loss == "mse" else scores

    def loss(self, logits, episode):
        if self.config.loss == "ce":
            return F.cross_entropy(logits, episode.query_labels)
        return F.mse_loss(logits, F.one_hot(episode.query_labels, episode.n_way).to(logits.dtype))
