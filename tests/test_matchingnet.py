"""Matching Networks' attention and full-context embeddings against float64 numpy loops."""

import numpy as np
import pytest
import torch
from bench.methods.matchingnet import MatchingNetwork

from bench.core.config import parse_method
from bench.errors import BenchError


def unit(x):
    return x / np.linalg.norm(x)


def reference_probabilities(support, labels, query, n_way, exact=True):
    """P(c | x̂) = Σ_{i: y_i = c} softmax_i cos(x̂, x_i) (support-only normalised if not exact)."""
    probabilities = np.zeros((len(query), n_way))
    for q, x in enumerate(query):
        x = unit(x) if exact else x
        scores = np.array([x @ unit(s) for s in support])
        attention = np.exp(scores) / np.exp(scores).sum()  # over the support images
        for i, label in enumerate(labels):
            probabilities[q, label] += attention[i]
    return probabilities


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def lstm_step(x, h, c, w_ih, w_hh, b):
    """One step of torch's LSTM cell (gate order i, f, g, o)."""
    i, f, g, o = np.split(w_ih @ x + w_hh @ h + b, 4)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def reference_fce(model, support, query):
    """g(x_i) = h→_i + h←_i + g'(x_i); f(x̂) after K attention-LSTM steps (paper, appendix)."""
    p = {name.replace("support_context.lstm.", ""): value.detach().double().numpy()
         for name, value in model.named_parameters()}
    width = support.shape[1]
    forward, backward = [], [None] * len(support)
    h = c = np.zeros(width)
    for x in support:
        h, c = lstm_step(x, h, c, p["weight_ih_l0"],
                         p["weight_hh_l0"],
                         p["bias_ih_l0"] + p["bias_hh_l0"])
        forward.append(h)
    h = c = np.zeros(width)
    for i in reversed(range(len(support))):
        h, c = lstm_step(support[i], h, c, p["weight_ih_l0_reverse"],
                         p["weight_hh_l0_reverse"],
                         p["bias_ih_l0_reverse"]
                         + p["bias_hh_l0_reverse"])
        backward[i] = h
    g = np.array([f + b + x for f, b, x in zip(forward, backward, support)])
    w, bias = p["query_context.gates.weight"], p["query_context.gates.bias"]
    f_rows = []
    for x in query:
        h, c = x, np.zeros(width)
        for _ in range(model.config.fce_steps):
            scores = g @ h
            attention = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
            readout = attention @ g
            i, f, gate, o = np.split(w @ np.concatenate([x, h, readout]) + bias, 4)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(gate)
            h = sigmoid(o) * np.tanh(c) + x
        f_rows.append(h)
    return g, np.array(f_rows)


@pytest.fixture
def episode():
    rng = np.random.default_rng(2)
    support = rng.normal(size=(6, 4))  # 3 classes × 2 shots, 4-d embeddings
    labels = np.array([0, 1, 2, 2, 1, 0])
    query = rng.normal(size=(5, 4))
    return support, labels, query


def head(model, support, labels, query, n_way=3):
    with torch.no_grad():
        return model.head(torch.from_numpy(support)[..., None, None], torch.from_numpy(labels),
                          torch.from_numpy(query)[..., None, None], n_way).double().numpy()


@pytest.mark.parametrize("cosine", ["exact", "support"])
def test_logits_are_log_class_attention(episode, cosine):
    support, labels, query = episode
    model = MatchingNetwork(parse_method(f"matchingnet(cosine={cosine})").config(), 1)
    logits = head(model, support, labels, query)
    probabilities = reference_probabilities(support, labels, query, 3, exact=cosine == "exact")
    np.testing.assert_allclose(logits, np.log(probabilities), rtol=1e-10)
    # the harness's cross-entropy on these logits is the paper's −log P(y | x̂, S)
    targets = np.array([0, 1, 2, 0, 1])
    loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(targets))
    expected = -np.mean(np.log(probabilities[np.arange(5), targets]))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-10)


def test_full_context_embeddings_follow_the_appendix(episode):
    support, labels, query = episode
    torch.manual_seed(0)
    config = parse_method("matchingnet(fce=true,fce_width=4,fce_steps=2)").config()
    model = MatchingNetwork(config, 1).double()
    logits = head(model, support, labels, query)
    g, f = reference_fce(model, support, query)
    np.testing.assert_allclose(logits, np.log(reference_probabilities(g, labels, f, 3)),
                               rtol=1e-8)
    assert not np.allclose(logits, head(MatchingNetwork(parse_method("matchingnet").config(), 1),
                                        support, labels, query), rtol=1e-3)


def test_fce_width_mismatch_is_a_one_line_error(episode):
    support, labels, query = episode
    model = MatchingNetwork(parse_method("matchingnet(fce=true)").config(), 1)
    with pytest.raises(BenchError, match="embeddings are 4 wide here but fce_width=64"):
        head(model, support, labels, query)
