"""CAN's head against the paper's formula in float64 numpy: correlation map, meta-fusion kernel,
1 + softmax(mean_j R_ij w_j / 0.025) on each side, 7 · cosine of the attended, pooled features;
its training losses (dense metric, global classification over base classes)."""

import numpy as np
import pytest
import torch
from bench.methods.base import TrainingEpisode

from bench.core.config import Cell, MethodSpec
from bench.core.model import build_model
from bench.errors import BenchError

# conv64f at 8×8: 64×2×2 maps, 4 positions


def can(image_size=8, **params):
    cell = Cell(MethodSpec("can", tuple((k, str(v)) for k, v in params.items())), "glyphs", (),
                3, 2, 2, 1, 0)
    torch.manual_seed(0)
    model = build_model(cell, 1, n_base_classes=10, image_size=image_size).eval()
    with torch.no_grad():
        norm = model.fusion.norm
        norm.running_mean.uniform_(-0.2, 0.2)
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.uniform_(0.5, 1.5)
    return model


def fusion_attention(fusion, correlation: np.ndarray) -> np.ndarray:
    """1 + softmax_i(mean_j R_ij w_j / τ) with w = W2 ReLU(BN(W1 mean_i R_ij)), for one R."""
    w1 = fusion.squeeze.weight.detach().double().numpy()[:, :, 0]
    b1 = fusion.squeeze.bias.detach().double().numpy()
    w2 = fusion.expand.weight.detach().double().numpy()[:, :, 0]
    b2 = fusion.expand.bias.detach().double().numpy()
    bn = fusion.norm
    hidden = w1 @ correlation.mean(0) + b1
    mean, var = bn.running_mean.double().numpy(), bn.running_var.double().numpy()
    gamma, beta = bn.weight.detach().double().numpy(), bn.bias.detach().double().numpy()
    hidden = (hidden - mean) / np.sqrt(var + bn.eps) * gamma + beta
    kernel = w2 @ np.maximum(hidden, 0) + b2
    weighted = (correlation * kernel[None, :]).mean(1) / 0.025
    soft = np.exp(weighted - weighted.max())
    return soft / soft.sum() + 1


def attended(model, support, labels, query, n_way):
    """Per (query, class): the attended class map and query map, [C, m] each."""
    s = support.double().numpy().reshape(len(support), 64, -1)
    q = query.double().numpy().reshape(len(query), 64, -1)
    classes = [s[labels.numpy() == c].mean(0) for c in range(n_way)]
    pairs = {}
    for i, qi in enumerate(q):
        for k, pk in enumerate(classes):
            unit_p = pk / np.linalg.norm(pk, axis=0, keepdims=True)
            unit_q = qi / np.linalg.norm(qi, axis=0, keepdims=True)
            correlation = unit_p.T @ unit_q  # R_ij: class position i, query position j
            a_p = fusion_attention(model.fusion, correlation)
            a_q = fusion_attention(model.fusion, correlation.T)
            pairs[i, k] = (pk * a_p[None], qi * a_q[None])
    return pairs


def cosine(a, b):
    return a @ b / np.linalg.norm(a) / np.linalg.norm(b)


def episode_features(seed=1):
    generator = torch.Generator().manual_seed(seed)
    support = torch.randn(6, 64, 2, 2, generator=generator)
    query = torch.randn(4, 64, 2, 2, generator=generator)
    return support, torch.tensor([0, 0, 1, 1, 2, 2]), query


def test_head_is_the_papers_formula():
    model = can()
    support, labels, query = episode_features()
    with torch.no_grad():
        logits = model.head(support, labels, query, 3).double().numpy()
    pairs = attended(model, support, labels, query, 3)
    expected = np.array([[7 * cosine(pairs[i, k][1].mean(1), pairs[i, k][0].mean(1))
                          for k in range(3)] for i in range(4)])
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def log_softmax(x, axis):
    shifted = x - x.max(axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis, keepdims=True))


def test_training_losses_are_the_papers():
    model = can(global_loss=1.0)
    support, labels, query = episode_features(2)
    query_labels = torch.tensor([0, 1, 2, 1])
    base = torch.tensor([5, 5, 2, 2, 7, 7, 5, 2, 7, 2])
    with torch.no_grad():
        loss, _ = model.training_loss(TrainingEpisode(support, labels, query, query_labels, 3,
                                                      base))
    pairs = attended(model, support, labels, query, 3)
    metric, global_term = [], []
    weight = model.classifier.weight.detach().double().numpy()[:, :, 0, 0]
    bias = model.classifier.bias.detach().double().numpy()
    for i, target in enumerate(query_labels.tolist()):
        dense = np.array([[7 * cosine(pairs[i, k][1][:, j], pairs[i, k][0].mean(1))
                           for j in range(4)] for k in range(3)])  # [class, position]
        metric.append(-log_softmax(dense, 0)[target].mean())
        scores = weight @ pairs[i, target][1] + bias[:, None]  # [base class, position]
        global_term.append(-log_softmax(scores, 0)[base[6 + i].item()].mean())
    expected = 0.5 * np.mean(metric) + 1.0 * np.mean(global_term)
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-4)


def test_meta_fusion_is_sized_by_the_map_positions():
    assert can(image_size=28).fusion.squeeze.in_channels == 49  # conv64f: 7×7
    assert can(image_size=84).fusion.squeeze.in_channels == 441  # 21×21
    assert can().classifier is None  # no global classifier unless global_loss > 0
    with pytest.raises(BenchError, match="image size"):
        build_model(Cell(MethodSpec("can"), "glyphs", (), 3, 2, 2, 1, 0), 1)
