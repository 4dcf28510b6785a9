"""Baseline / Baseline++ test-time fitting: the hand-written SGD equals torch's SGD with autograd
on the reference classifiers (nn.Linear; weight-normalised cosine), and is deterministic for a
seed, whatever the evaluation order."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from bench.methods._finetune import FitSettings, fit_and_score

from bench.core.config import Cell, MethodSpec
from bench.core.episodes import Episode
from bench.core.model import build_model, episode_seed


def torch_reference(support, labels, query, n_way, kind, seed, settings):
    """The reference code's loop (CloserLookFewShot baselinefinetune.py) with torch autograd, the
    same initial values and the same batch order as ``fit_and_score`` draws from its seed."""
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(support.shape[1])
    if kind == "linear":
        weight = rng.uniform(-bound, bound, (n_way, support.shape[1]))
        bias = rng.uniform(-bound, bound, n_way)
        params = [torch.tensor(weight, requires_grad=True), torch.tensor(bias, requires_grad=True)]

        def logits(x):
            return x @ params[0].T + params[1]
    else:
        direction = rng.uniform(-bound, bound, (n_way, support.shape[1]))
        params = [torch.tensor(direction, requires_grad=True),
                  torch.tensor(np.linalg.norm(direction, axis=1), requires_grad=True)]

        def logits(x):
            weight = params[1][:, None] * params[0] / params[0].norm(dim=1, keepdim=True)
            return 2.0 * (x / (x.norm(dim=1, keepdim=True) + 1e-5)) @ weight.T
    optimizer = torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum,
                                dampening=settings.dampening,
                                weight_decay=settings.weight_decay)
    x, y = torch.from_numpy(support), torch.from_numpy(labels)
    for _ in range(settings.epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), settings.batch):
            rows = torch.from_numpy(order[start:start + settings.batch])
            optimizer.zero_grad()
            F.cross_entropy(logits(x[rows]), y[rows]).backward()
            optimizer.step()
    with torch.no_grad():
        return logits(torch.from_numpy(query)).numpy()


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_fit_equals_torch_sgd_on_the_reference_classifier(kind):
    rng = np.random.default_rng(0)
    support, query = rng.normal(size=(10, 6)), rng.normal(size=(4, 6))
    labels = np.repeat(np.arange(5), 2)
    settings = FitSettings(epochs=7)
    mine = fit_and_score(support, labels, query, 5, kind, seed=3, settings=settings)
    reference = torch_reference(support, labels, query, 5, kind, 3, settings)
    np.testing.assert_allclose(mine, reference, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("method", ["baseline", "baselinepp"])
def test_fit_is_deterministic_for_the_episode_and_fits_the_support(method):
    cell = Cell(MethodSpec(method), "glyphs", (), 5, 1, 3, 1, 0)
    model = build_model(cell, 1).eval()
    generator = torch.Generator().manual_seed(0)
    support = torch.randn(5, 64, 1, 1, generator=generator)
    labels = torch.arange(5)
    episode = Episode(torch.arange(5).view(5, 1), torch.arange(5, 20).view(5, 3))
    model.episode_seed = episode_seed(episode)
    first = model.head(support, labels, support, 5)
    model.episode_seed = episode_seed(Episode(episode.support + 100, episode.query))
    other = model.head(support, labels, support, 5)
    model.episode_seed = episode_seed(episode)
    assert torch.equal(model.head(support, labels, support, 5), first)
    assert not torch.equal(first, other)  # the seed is used
    assert (first.argmax(1) == labels).all()  # 100 epochs fit 5 separable points
