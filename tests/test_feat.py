"""FEAT's head against the paper's formula in float64 numpy: prototypes adapted by one
single-head Transformer layer (residual, layer norm), then −‖q − p'‖² / 64; its regulariser."""

import numpy as np
import torch
from bench.methods.base import TrainingEpisode

from bench.core.config import Cell, MethodSpec
from bench.core.model import build_model


def feat(**params):
    cell = Cell(MethodSpec("feat", tuple((k, str(v)) for k, v in params.items())), "glyphs", (),
                3, 2, 2, 1, 0)
    torch.manual_seed(0)
    model = build_model(cell, 1).eval()
    with torch.no_grad():  # a non-trivial layer norm, so that a missing one shows
        model.adapt.norm.weight.uniform_(0.5, 1.5)
        model.adapt.norm.bias.uniform_(-0.5, 0.5)
    return model


def transformer(layer, sets: np.ndarray) -> np.ndarray:
    """LayerNorm(P + (softmax(P Wq (P Wk)ᵀ / √d) P Wv) Woᵀ + bo) per set, float64."""
    w = {name: getattr(layer, name).weight.detach().double().numpy()
         for name in ("query", "key", "value", "out")}
    out_bias = layer.out.bias.detach().double().numpy()
    gamma = layer.norm.weight.detach().double().numpy()
    beta = layer.norm.bias.detach().double().numpy()
    results = []
    for p in sets:
        scores = (p @ w["query"].T) @ (p @ w["key"].T).T / np.sqrt(p.shape[1])
        attention = np.exp(scores - scores.max(1, keepdims=True))
        attention /= attention.sum(1, keepdims=True)
        x = p + (attention @ (p @ w["value"].T)) @ w["out"].T + out_bias
        mean, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
        results.append((x - mean) / np.sqrt(var + 1e-5) * gamma + beta)
    return np.stack(results)


def test_head_is_the_papers_formula():
    model = feat()
    generator = torch.Generator().manual_seed(1)
    support = torch.randn(6, 64, 2, 2, generator=generator)
    query = torch.randn(4, 64, 2, 2, generator=generator)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    with torch.no_grad():
        logits = model.head(support, labels, query, 3).double().numpy()
    pooled = support.double().numpy().mean((2, 3))
    protos = np.stack([pooled[labels.numpy() == c].mean(0) for c in range(3)])
    adapted = transformer(model.adapt, protos[None])[0]
    q = query.double().numpy().mean((2, 3))
    expected = -((q[:, None, :] - adapted[None]) ** 2).sum(-1) / 64.0
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_regulariser_adapts_each_class_set_and_scores_every_instance():
    model = feat(balance=1.0)
    generator = torch.Generator().manual_seed(2)
    support = torch.randn(6, 64, 1, 1, generator=generator)
    query = torch.randn(6, 64, 1, 1, generator=generator)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    episode = TrainingEpisode(support, labels, query, labels, 3)
    with torch.no_grad():
        loss, logits = model.training_loss(episode)
        main = torch.nn.functional.cross_entropy(logits, labels)
    instances = np.concatenate([support.double().numpy()[:, :, 0, 0],
                                query.double().numpy()[:, :, 0, 0]])
    all_labels = np.concatenate([labels.numpy(), labels.numpy()])
    sets = np.stack([instances[all_labels == c] for c in range(3)])
    centres = transformer(model.adapt, sets).mean(1)
    reg_logits = -((instances[:, None] - centres[None]) ** 2).sum(-1) / 16.0
    shifted = reg_logits - reg_logits.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    regulariser = -log_p[np.arange(len(all_labels)), all_labels].mean()
    np.testing.assert_allclose(loss.item(), main.item() + regulariser, rtol=1e-4)
