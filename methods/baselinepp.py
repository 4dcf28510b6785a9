"""Baseline++ (Chen, Liu, Kira, Wang & Huang, "A Closer Look at Few-shot Classification", 2019).

Baseline (``bench.methods.baseline``) with the cosine classifier in both phases: pre-training over
the base classes trains a scaled cosine classifier (``pretrain_classifier = "cosine"``, so its
backbone is not Baseline's), and each test episode fits a new one on the support features:
s · cos(x, w_c) with class-wise learnable norms of w_c (weight normalisation), s = 2 for ≤ 200
classes, as in the reference code's distLinear.
"""

from __future__ import annotations

from typing import ClassVar

from bench.methods.baseline import FineTunedClassifier

from bench.registry import METHODS


@METHODS.register("baselinepp")
class BaselinePlusPlus(FineTunedClassifier):
    """Chen et al. 2019's Baseline++: pre-trained cosine classifier, one fitted per episode."""

    pretrain_classifier: ClassVar[str] = "cosine"
    classifier_kind: ClassVar[str] = "cosine"
