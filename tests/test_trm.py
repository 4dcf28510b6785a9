"""TRM against a hand computation, and its options, shapes and chunking."""

import math

import numpy as np
import pytest
import torch

from bench.methods.trm import TaskRelatedMetric, class_positions


def make_trm(channels=2, **options):
    config = TaskRelatedMetric.Config(attn_dim=channels, temperature="fixed", tau=1.0, **options)
    model = TaskRelatedMetric(config, in_channels=1, channels=channels)
    with torch.no_grad():
        for layer in (model.w_q, model.w_k, model.w_v, model.w_o):
            layer.weight.copy_(torch.eye(channels))
    return model.eval()


def reference_logits(query, support, labels, n_way, dual=False, per_position=False):
    """The patent's formulas with numpy loops: identity projections, τ = 1."""
    channels = query.shape[1]
    result = np.zeros((len(query), n_way))
    for qi, query_map in enumerate(query):
        f_q = query_map.reshape(channels, -1).T  # HW × C
        for c in range(n_way):
            f_s = np.concatenate([s.reshape(channels, -1).T for s, y in zip(support, labels)
                                  if y == c])  # K·HW × C
            scores = f_q @ f_s.T / math.sqrt(channels)
            rows = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
            weights = rows * (np.exp(scores) / np.exp(scores).sum(0, keepdims=True)) \
                if dual else rows
            f_a = weights @ f_s
            if per_position:
                cosines = (f_q * f_a).sum(1) / (np.linalg.norm(f_q, axis=1)
                                                 * np.linalg.norm(f_a, axis=1))
                result[qi, c] = cosines.mean()
            else:
                result[qi, c] = (f_q * f_a).sum() / (np.linalg.norm(f_q) * np.linalg.norm(f_a))
    return result


@pytest.mark.parametrize("dual", [False, True])
@pytest.mark.parametrize("per_position", [False, True])
@pytest.mark.parametrize("shot", [1, 3])
def test_matches_hand_computation(dual, per_position, shot):
    generator = torch.Generator().manual_seed(0)
    n_way, channels = 3, 2
    support = torch.randn(n_way * shot, channels, 2, 2, generator=generator)
    labels = torch.arange(n_way).repeat(shot)  # interleaved: the head must group by label
    query = torch.randn(4, channels, 2, 2, generator=generator)
    model = make_trm(channels, dual_softmax=dual, per_position=per_position)
    with torch.no_grad():
        logits = model.head(support, labels, query, n_way)
    expected = reference_logits(query.numpy(), support.numpy(), labels.numpy(), n_way, dual,
                                per_position)
    np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_attention_weights_rows_sum_to_one_and_cosine_bounded():
    model = TaskRelatedMetric(TaskRelatedMetric.Config(), in_channels=1).eval()
    q, k = torch.randn(5, 3, 49, 64), torch.randn(5, 3, 98, 64)
    weights = model.attention_weights(q, k)
    assert weights.shape == (5, 3, 49, 98)
    torch.testing.assert_close(weights.sum(-1), torch.ones(5, 3, 49))
    support, query = torch.randn(10, 64, 7, 7), torch.randn(6, 64, 7, 7)
    with torch.no_grad():
        cosines = model.head(support, torch.arange(5).repeat(2), query, 5) / model.temperature(
            torch.tensor(1.0))
    assert cosines.shape == (6, 5)
    assert cosines.abs().max() <= 1 + 1e-5


def test_dual_softmax_weights_are_products_of_row_and_column_softmax():
    model = make_trm(4, dual_softmax=True)
    q, k = torch.randn(2, 3, 6, 4), torch.randn(2, 3, 12, 4)
    scores = q @ k.transpose(-1, -2) / 2.0
    expected = scores.softmax(-1) * scores.softmax(-2)
    torch.testing.assert_close(model.attention_weights(q, k), expected)
    assert bool((model.attention_weights(q, k).sum(-1) <= 1 + 1e-6).all())


def test_k_shot_keys_are_all_positions_of_the_class():
    support = torch.randn(15, 64, 7, 7)
    labels = torch.arange(5).repeat_interleave(3)
    keys = class_positions(support, labels, 5)
    assert keys.shape == (5, 3 * 49, 64)
    torch.testing.assert_close(keys[2, :49], support[6].flatten(1).T)


def test_chunked_equals_unchunked():
    torch.manual_seed(0)
    big = TaskRelatedMetric(TaskRelatedMetric.Config(), in_channels=1).eval()
    small = TaskRelatedMetric(TaskRelatedMetric.Config(max_attn_mib=1), in_channels=1).eval()
    small.load_state_dict(big.state_dict())
    support, query = torch.randn(25, 64, 7, 7), torch.randn(75, 64, 7, 7)
    labels = torch.arange(5).repeat_interleave(5)
    assert small.query_chunk_size(49, 5 * 49, 5) < 75 <= big.query_chunk_size(49, 5 * 49, 5)
    with torch.no_grad():
        torch.testing.assert_close(small.head(support, labels, query, 5),
                                   big.head(support, labels, query, 5))


def test_learned_and_fixed_temperature():
    learned = TaskRelatedMetric(TaskRelatedMetric.Config(), in_channels=1)
    fixed = TaskRelatedMetric(TaskRelatedMetric.Config(temperature="fixed", tau=1.0), 1)
    names = {name for name, _ in learned.named_parameters()}
    assert "temperature.log_value" in names
    assert "temperature.log_value" not in {name for name, _ in fixed.named_parameters()}
    assert fixed.temperature(torch.tensor(0.5)).item() == pytest.approx(0.5)
