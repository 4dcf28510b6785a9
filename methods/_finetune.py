"""Baseline's and Baseline++'s classifiers: fitted per test episode on its support features,
and Baseline++'s cosine classifier as a torch module for pre-training (``CosineClassifier``).

Chen et al. 2019 (reference code: CloserLookFewShot, methods/baselinefinetune.py) fit a new
classifier on the support features of every test episode: 100 epochs over the support set in a
fresh random order each, mini-batches of 4, cross-entropy, SGD with lr 0.01, momentum 0.9,
dampening 0.9 and weight decay 1e-3 (PyTorch's SGD: the first step's momentum buffer is the
gradient itself, undampened), starting from PyTorch's default initialisation of a linear layer
(uniform in ±1/√D). Baseline fits a linear layer (weights and bias); Baseline++ fits its cosine
classifier s · x̂ · w_c with weight-normalised w_c = g_c v_c / ‖v_c‖ (g_c starts at ‖v_c‖), s = 2
for ≤ 200 classes, else 10, on x̂ = x / (‖x‖ + 1e-5).

The per-episode gradients are written out by hand in numpy (float64) instead of autograd: an
episode is a few hundred steps on a handful of rows, where torch's per-call overhead would
dominate, and the episode's generator (seeded by ``bench.core.model.episode_seed``) makes the
fit deterministic. ``CosineModel`` is that numpy twin of ``CosineClassifier``; both take their
scale from ``cosine_scale`` and their input normalisation from ``NORM_EPSILON``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

NORM_EPSILON = 1e-5  # x̂ = x / (‖x‖ + ε), as the reference code's distLinear


def cosine_scale(classes: int) -> float:
    """s of Baseline++'s cosine classifier: 2 for ≤ 200 classes, else 10 (distLinear)."""
    return 2.0 if classes <= 200 else 10.0


class CosineClassifier(nn.Module):
    """Baseline++'s classifier (Chen et al. 2019) for pre-training: s · x̂ · w_c with
    w_c = g_c v_c / ‖v_c‖ (weight normalisation: a learnable norm per class)."""

    def __init__(self, features: int, classes: int):
        super().__init__()
        self.linear = nn.utils.parametrizations.weight_norm(
            nn.Linear(features, classes, bias=False), dim=0)
        self.scale = cosine_scale(classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.linear(x / (x.norm(dim=1, keepdim=True) + NORM_EPSILON))


@dataclass(frozen=True)
class FitSettings:
    epochs: int = 100
    batch: int = 4
    lr: float = 0.01
    momentum: float = 0.9
    dampening: float = 0.9
    weight_decay: float = 1e-3


def softmax_minus_onehot(logits: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """d(mean cross-entropy)/d(logits) of a batch with one-hot targets."""
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    return (shifted / shifted.sum(1, keepdims=True) - onehot) / len(onehot)


class LinearModel:
    """logits = x Wᵀ + b, as one matrix [W | b] on inputs [x, 1] (weight decay covers both, as
    PyTorch's SGD decays every parameter of the layer)."""

    def __init__(self, dim: int, n_way: int, rng: np.random.Generator):
        bound = 1.0 / np.sqrt(dim)
        weight, bias = rng.uniform(-bound, bound, (n_way, dim)), rng.uniform(-bound, bound, n_way)
        self.params = [np.concatenate([weight, bias[:, None]], axis=1)]

    @staticmethod
    def inputs(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x, np.ones((len(x), 1))], axis=1)

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        return inputs @ self.params[0].T

    def gradients(self, inputs: np.ndarray, onehot: np.ndarray) -> list[np.ndarray]:
        """d(mean cross-entropy)/d(params) on a batch."""
        return [softmax_minus_onehot(self.logits(inputs), onehot).T @ inputs]


class CosineModel:
    """logits = s · x̂ · (g v / ‖v‖)ᵀ: ``CosineClassifier`` with hand-written numpy gradients."""

    def __init__(self, dim: int, n_way: int, rng: np.random.Generator):
        bound = 1.0 / np.sqrt(dim)
        direction = rng.uniform(-bound, bound, (n_way, dim))
        self.params = [direction, np.linalg.norm(direction, axis=1)]
        self.scale = cosine_scale(n_way)

    @staticmethod
    def inputs(x: np.ndarray) -> np.ndarray:
        return x / (np.linalg.norm(x, axis=1, keepdims=True) + NORM_EPSILON)

    def unit(self) -> tuple[np.ndarray, np.ndarray]:
        """v / ‖v‖ and ‖v‖ (column)."""
        norms = np.linalg.norm(self.params[0], axis=1, keepdims=True)
        return self.params[0] / norms, norms

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        unit, _ = self.unit()
        return (self.scale * inputs) @ (self.params[1][:, None] * unit).T

    def gradients(self, inputs: np.ndarray, onehot: np.ndarray) -> list[np.ndarray]:
        """d(mean cross-entropy)/d(params) on a batch (v / ‖v‖ computed once)."""
        unit, norms = self.unit()
        scaled = self.scale * inputs
        dlogits = softmax_minus_onehot(scaled @ (self.params[1][:, None] * unit).T, onehot)
        dweight = dlogits.T @ scaled
        dgain = (dweight * unit).sum(1)
        ddirection = self.params[1][:, None] / norms * (dweight - dgain[:, None] * unit)
        return [ddirection, dgain]


MODELS = {"linear": LinearModel, "cosine": CosineModel}


def fit_and_score(support: np.ndarray, labels: np.ndarray, query: np.ndarray, n_way: int,
                  kind: str, seed: int, settings: FitSettings = FitSettings()) -> np.ndarray:
    """Logits [n_query, n_way] of a ``kind`` classifier fitted on (support, labels) by SGD."""
    rng = np.random.default_rng(seed)
    model = MODELS[kind](support.shape[1], n_way, rng)
    inputs, onehot = model.inputs(support), np.eye(n_way)[labels]
    buffers: list[np.ndarray | None] = [None] * len(model.params)
    decay, momentum, keep = settings.weight_decay, settings.momentum, 1 - settings.dampening
    for _ in range(settings.epochs):
        order = rng.permutation(len(support))
        for start in range(0, len(support), settings.batch):
            rows = order[start:start + settings.batch]
            for index, grad in enumerate(model.gradients(inputs[rows], onehot[rows])):
                grad += decay * model.params[index]
                if buffers[index] is None:  # PyTorch: the first buffer is the gradient itself
                    buffers[index] = grad
                else:
                    buffers[index] = momentum * buffers[index] + keep * grad
                model.params[index] = model.params[index] - settings.lr * buffers[index]
    return model.logits(model.inputs(query))
