"""Baseline (Chen, Liu, Kira, Wang & Huang, "A Closer Look at Few-shot Classification", ICLR 2019).

A backbone pre-trained as a plain classifier over all base classes (``bench.train.pretrain``:
``--pretrain-epochs N`` is required), and, for every test episode, a new linear classifier fitted
on the support features by SGD (``bench.methods._finetune``: the paper's 100 epochs, batch 4,
lr 0.01, momentum 0.9, weight decay 1e-3), seeded by the episode. Nothing is learned from
training episodes, so its cells train 0 of them. Features are the globally average-pooled maps
(Chen et al. flatten their Conv-4 maps, which are 1×1 at 28×28 and 5×5 at 84×84).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from bench.methods._finetune import FitSettings, fit_and_score
from bench.methods.backbones import BACKBONE_HELP
from bench.methods.base import FewShotClassifier, MethodConfig, global_pool, param

from bench.registry import METHODS


class FineTunedClassifier(FewShotClassifier):
    """A pre-trained backbone and a ``classifier_kind`` classifier fitted per test episode."""

    episodic: ClassVar[bool] = False
    requires_pretraining: ClassVar[bool] = True
    fits_at_test_time: ClassVar[bool] = True
    classifier_kind: ClassVar[str] = "linear"

    @dataclass(frozen=True)
    class Config(MethodConfig):
        backbone: str = param("conv4", BACKBONE_HELP)
        fit_epochs: int = param(100, "test-time SGD epochs over the support set (Chen et al.: "
                                     "100)", positive=True)
        fit_batch: int = param(4, "test-time SGD batch size (Chen et al.: 4)", positive=True)
        fit_lr: float = param(0.01, "test-time SGD learning rate (Chen et al.: 0.01; momentum "
                                    "0.9, dampening 0.9, weight decay 1e-3)", positive=True)

    def head(self, support, support_labels, query, n_way):
        settings = FitSettings(epochs=self.config.fit_epochs, batch=self.config.fit_batch,
                               lr=self.config.fit_lr)
        logits = fit_and_score(
            global_pool(support).detach().double().cpu().numpy(),
            support_labels.cpu().numpy(), global_pool(query).detach().double().cpu().numpy(),
            n_way, self.classifier_kind, self.episode_seed, settings)
        return torch.from_numpy(logits).to(device=query.device, dtype=torch.float32)


@METHODS.register("baseline")
class Baseline(FineTunedClassifier):
    """Chen et al. 2019's Baseline: pre-trained backbone, linear classifier fitted per episode."""
