"""CrossTransformers' query-aligned prototypes and distance against explicit float64 loops."""

import math

import numpy as np
import pytest
import torch
from bench.methods.ctx import CrossTransformer

from bench.core.config import parse_method


def reference_ctx(support, labels, query, n_way, key_head, value_head, scale=True):
    """For each query position p: softmax over all (shot j, position m) of the class of
    k_jm · q_p / √d_k, aligned prototype t_p = Σ ã v_jm; logit = −(1/HW) Σ_p ‖t_p − w_p‖²."""
    d_k = key_head.shape[0]
    factor = 1 / math.sqrt(d_k) if scale else 1.0

    def positions(image):  # [C, H, W] → [HW, C]
        return image.reshape(image.shape[0], -1).T

    logits = np.zeros((len(query), n_way))
    for q, image in enumerate(query):
        local = positions(image)
        for c in range(n_way):
            pool = np.concatenate([positions(support[i]) for i in range(len(labels))
                                   if labels[i] == c])  # [K·HW, C]
            distance = 0.0
            for x in local:
                query_key = key_head @ x  # shared query/key head
                scores = np.array([(key_head @ y) @ query_key * factor for y in pool])
                weights = np.exp(scores - scores.max())
                weights /= weights.sum()
                aligned = sum(w * (value_head @ y) for w, y in zip(weights, pool))
                distance += float(np.sum((aligned - value_head @ x) ** 2))
            logits[q, c] = -distance / len(local)
    return logits


@pytest.fixture
def episode():
    rng = np.random.default_rng(1)
    support = rng.normal(size=(4, 5, 1, 3)).astype(np.float32)  # 2 classes × 2 shots, 3 positions
    labels = np.array([0, 0, 1, 1])
    query = rng.normal(size=(3, 5, 1, 3)).astype(np.float32)
    return support, labels, query


def ctx_logits(config_text, support, labels, query):
    torch.manual_seed(0)
    model = CrossTransformer(parse_method(config_text).config(), 1, channels=5)
    with torch.no_grad():
        logits = model.head(torch.from_numpy(support), torch.from_numpy(labels),
                            torch.from_numpy(query), 2).numpy()
    heads = (model.key_head.weight.detach().double().numpy(),
             model.value_head.weight.detach().double().numpy())
    return logits, heads


def test_head_matches_the_papers_formulas(episode):
    support, labels, query = episode
    logits, (key_head, value_head) = ctx_logits("ctx(key_dim=3,value_dim=2)", support, labels,
                                                query)
    expected = reference_ctx(support.astype(np.float64), labels, query.astype(np.float64), 2,
                             key_head, value_head)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)


def test_default_dims_and_unscaled_option(episode):
    support, labels, query = episode
    logits, (key_head, value_head) = ctx_logits("ctx(scale=none)", support, labels, query)
    assert key_head.shape == (128, 5) and value_head.shape == (128, 5)
    args = (support.astype(np.float64), labels, query.astype(np.float64), 2, key_head, value_head)
    np.testing.assert_allclose(logits, reference_ctx(*args, scale=False), rtol=1e-5, atol=1e-5)
    assert not np.allclose(logits, reference_ctx(*args, scale=True), rtol=1e-3)


def test_softmax_runs_jointly_over_the_shots(episode):
    """Softmax over each shot's positions separately (then averaged) is another prototype."""
    support, labels, query = episode
    logits, (key_head, value_head) = ctx_logits("ctx(key_dim=3,value_dim=2)", support, labels,
                                                query)
    per_shot = np.mean([
        reference_ctx(support[[shot, shot + 2]].astype(np.float64), np.array([0, 1]),
                      query.astype(np.float64), 2, key_head, value_head)
        for shot in (0, 1)], axis=0)
    assert not np.allclose(logits, per_shot, rtol=1e-3)


def test_query_blocks_change_nothing(episode, monkeypatch):
    support, labels, query = episode
    whole, _ = ctx_logits("ctx", support, labels, query)
    monkeypatch.setattr("bench.methods._local.BLOCK_BYTES", 1)
    blocked, _ = ctx_logits("ctx", support, labels, query)
    np.testing.assert_allclose(blocked, whole, rtol=1e-6)
