"""TRM against an independent float64 implementation of the patent's formulas 1–3.

The reference below is written from docs/trm.md, not from methods/trm.py: explicit loops over
(query, class, key set), numpy in float64, the model's own random non-square projection weights
(attn_dim ≠ C), every value of every option. It tells the patent's head from near misses (W_q and
W_k swapped, W_o dropped, W_k used for the values, W_o before W_v, the wrong scale, the cosine
against the projected query): scripts/trm_mutants.py runs each against this file.
"""

import itertools
import math

import bench.methods.trm as trm_module
import numpy as np
import pytest
import torch
from bench.methods._attention import DualSoftmaxAttention
from bench.methods.trm import TaskRelatedMetric, class_maps

CHANNELS, ATTN_DIM, SIDE = 6, 4, 2


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def normalised_weights(scores, normalize, iters):
    """α of one (query, key set) pair: scores [HW, L] → weights [HW, L]."""
    rows = softmax(scores, axis=1)
    if normalize == "row":
        return rows
    if normalize == "dual":  # each row and each column normalised, the two multiplied
        return rows * softmax(scores, axis=0)
    weights = rows
    for _ in range(iters):  # Sinkhorn: columns, then rows, `iters` times
        weights = weights / weights.sum(axis=0, keepdims=True)
        weights = weights / weights.sum(axis=1, keepdims=True)
    return weights


def cosine(f_q, f_a, per_position):
    if per_position:
        return np.mean((f_q * f_a).sum(1) / (np.linalg.norm(f_q, axis=1)
                                              * np.linalg.norm(f_a, axis=1)))
    return (f_q * f_a).sum() / (np.linalg.norm(f_q) * np.linalg.norm(f_a))


def reference_logits(model, query, support, labels, n_way):
    """Formulas 1–3 for every (query, class) pair, float64, from the model's weights."""
    config = model.config
    w_q, w_k, w_v, w_o = (layer.weight.detach().double().numpy()
                          for layer in (model.w_q, model.w_k, model.w_v, model.w_o))
    channels, attn_dim = query.shape[1], w_q.shape[0]
    scale = 1 / math.sqrt(channels if config.scale == "channels" else attn_dim)
    tau = float(model.temperature.log_value.detach().exp())
    logits = np.zeros((len(query), n_way))
    for qi, query_map in enumerate(query):
        f_q = query_map.reshape(channels, -1).T  # HW × C
        for c in range(n_way):
            shots = [s.reshape(channels, -1).T for s, y in zip(support, labels) if y == c]
            key_sets = {"concat": [np.concatenate(shots)], "mean_map": [np.mean(shots, axis=0)],
                        "per_shot": shots}[config.shots]
            cosines = []
            for f_s in key_sets:
                q, k, v = f_q @ w_q.T, f_s @ w_k.T, f_s @ w_v.T  # formula 1
                alpha = normalised_weights(q @ k.T * scale, config.normalize,
                                           config.sinkhorn_iters)
                f_a = (alpha @ v) @ w_o.T  # formula 2, then S307's linear layer
                cosines.append(cosine(f_q, f_a, config.per_position))  # formula 3
            logits[qi, c] = tau * np.mean(cosines)
    return logits


def random_trm(seed=0, channels=CHANNELS, **options):
    torch.manual_seed(seed)
    options = {"attn_dim": ATTN_DIM, "init": "random", **options}
    model = TaskRelatedMetric(TaskRelatedMetric.Config(**options), in_channels=1,
                              channels=channels)
    with torch.no_grad():  # τ ≠ 1 and non-trivial, so a dropped or doubled τ shows
        model.temperature.log_value.fill_(math.log(3.7))
    return model.eval()


def episode(n_way, shot, n_query=4, channels=CHANNELS, seed=1, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    support = torch.randn(n_way * shot, channels, SIDE, SIDE + 1, generator=generator,
                          dtype=dtype)
    labels = torch.arange(n_way).repeat(shot)  # interleaved: the head must group by label
    query = torch.randn(n_query, channels, SIDE, SIDE + 1, generator=generator, dtype=dtype)
    return support, labels, query


def check_against_reference(model, n_way, shot, atol=1e-6):
    support, labels, query = episode(n_way, shot)
    model = model.double()
    with torch.no_grad():
        logits = model.head(support, labels, query, n_way)
    expected = reference_logits(model, query.numpy(), support.numpy(), labels.numpy(), n_way)
    np.testing.assert_allclose(logits.numpy(), expected, rtol=0, atol=atol)


@pytest.mark.parametrize("normalize,shots,scale",
                         list(itertools.product(("dual", "row", "sinkhorn"),
                                                ("concat", "mean_map", "per_shot"),
                                                ("channels", "attn_dim"))))
@pytest.mark.parametrize("n_way,shot", [(2, 1), (5, 3)])
def test_matches_reference(normalize, shots, scale, n_way, shot):
    model = random_trm(normalize=normalize, shots=shots, scale=scale)
    check_against_reference(model, n_way, shot)


@pytest.mark.parametrize("options", [
    {"per_position": True}, {"per_position": True, "normalize": "row"},
    {"sinkhorn_iters": 1, "normalize": "sinkhorn"}, {"sinkhorn_iters": 7, "normalize": "sinkhorn"},
    {"init": "identity"}, {"attn_dim": 9}, {"temperature": "fixed", "tau": 1.0},
])
@pytest.mark.parametrize("n_way,shot", [(2, 3), (5, 1)])
def test_matches_reference_other_options(options, n_way, shot):
    check_against_reference(random_trm(**options), n_way, shot)


@pytest.mark.parametrize("shots", ["concat", "per_shot"])
def test_embed_dim_is_the_channel_count_of_every_formula(shots):
    """embed_dim=C': a per-position linear layer 64 → C' after the backbone; the head and its
    1/√C then work on C' channels."""
    model = random_trm(channels=64, embed_dim=CHANNELS, shots=shots)
    assert model.channels == CHANNELS and model.w_q.in_features == CHANNELS
    check_against_reference(model, 3, 2)
    images = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        raw = model.backbone(images.contiguous(memory_format=torch.channels_last))
        expected = torch.einsum("bchw,oc->bohw", raw, model.embedding_fc.weight[:, :, 0, 0])
        expected += model.embedding_fc.bias[None, :, None, None]
        torch.testing.assert_close(model.embed(images), expected)


@pytest.mark.parametrize("training", [False, True])
def test_dual_fallback_path_matches_reference(training, monkeypatch):
    """Blocks whose factored column softmax would leave the float range take the plain column
    softmax: forced here for every block, in inference and in the training forward pass."""
    from bench.methods import _attention

    monkeypatch.setattr(_attention, "_FACTOR_RANGE", {torch.float64: -1.0})
    model = random_trm().double().train(training)
    support, labels, query = episode(5, 3)
    support.requires_grad_(training)
    with torch.set_grad_enabled(training):
        logits = model.head(support, labels, query, 5)
    expected = reference_logits(model, query.numpy(), support.detach().numpy(), labels.numpy(), 5)
    np.testing.assert_allclose(logits.detach().numpy(), expected, rtol=0, atol=1e-6)


def test_float32_head_matches_reference():
    model = random_trm()
    support, labels, query = episode(5, 3, dtype=torch.float32)
    with torch.no_grad():
        logits = model.head(support, labels, query, 5)
    expected = reference_logits(model, query.double().numpy(), support.double().numpy(),
                                labels.numpy(), 5)
    np.testing.assert_allclose(logits.numpy(), expected, rtol=0, atol=2e-5)


def test_identity_init_makes_the_value_path_the_identity():
    model = TaskRelatedMetric(TaskRelatedMetric.Config(), in_channels=1)
    x = torch.randn(7, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.w_o(model.w_v(x)), x, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.w_q.weight, model.w_k.weight)
    wide = TaskRelatedMetric(TaskRelatedMetric.Config(attn_dim=128), in_channels=1)
    with torch.no_grad():
        torch.testing.assert_close(wide.w_o(wide.w_v(x)), x, atol=1e-5, rtol=1e-5)


def test_dual_attention_gradient_is_exact():
    """The hand-written backward pass of the dual softmax against finite differences."""
    generator = torch.Generator().manual_seed(0)
    hw = 3
    q = torch.randn(2, 2 * hw, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    k = torch.randn(2, 5, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    v = torch.randn(2, 5, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: DualSoftmaxAttention.apply(a, b, c, hw),
                                    (q, k, v))


@pytest.mark.parametrize("normalize", ["dual", "row", "sinkhorn"])
def test_chunked_training_equals_unchunked(normalize, monkeypatch):
    """Blocks of queries (max_attn_mib) and of key sets (the explicit paths' cache-sized
    blocks) change neither logits nor gradients."""
    big = random_trm(channels=64, attn_dim=64, normalize=normalize).train()
    small = random_trm(channels=64, attn_dim=64, normalize=normalize, max_attn_mib=1).train()
    small.load_state_dict(big.state_dict())
    labels = torch.arange(5).repeat(5)
    support, query = torch.randn(25, 64, 7, 7), torch.randn(40, 64, 7, 7)
    results, chunks = [], []
    for model, block in ((big, 1 << 40), (small, 1 << 10)):  # 1 KiB: one query, one class
        monkeypatch.setattr(trm_module, "EXPLICIT_BLOCK_BYTES", block)
        chunks.append(model.query_chunk_size(49, 5 * 49, 5))
        model.zero_grad()
        logits = model.head(support, labels, query, 5)
        logits.square().sum().backward()
        results.append((logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                          if p.grad is not None}))
    assert chunks[1] < 40 <= chunks[0]
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-5)
    assert set(results[0][1]) == {"w_q.weight", "w_k.weight", "w_v.weight", "w_o.weight",
                                  "temperature.log_value"}
    for name, grad in results[0][1].items():
        torch.testing.assert_close(grad, results[1][1][name], rtol=1e-4, atol=1e-5)


def test_training_keeps_only_one_chunk_of_weights():
    """Autograd saves q, k, v per chunk, not the HW × K·HW weights: the saved bytes stay far
    below one chunk's weights."""
    model = random_trm(channels=64, attn_dim=64, max_attn_mib=4).train()
    support, labels = torch.randn(25, 64, 21, 21), torch.arange(5).repeat_interleave(5)
    query = torch.randn(20, 64, 21, 21)
    saved = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model.head(support, labels, query, 5)
    weights_per_query = 5 * 441 * 5 * 441 * 4  # bytes of one query's α over the 5 classes
    assert max(saved.values()) < weights_per_query
    assert sum(saved.values()) < 20 * weights_per_query / 8


def test_k_shot_key_sets():
    support = torch.randn(15, 64, 7, 7)
    labels = torch.arange(5).repeat_interleave(3)
    maps = class_maps(support, labels, 5)
    assert maps.shape == (5, 3, 49, 64)
    torch.testing.assert_close(maps[2, 0], support[6].flatten(1).T)


def test_attention_rows_of_dual_weights_sum_to_at_most_one():
    scores = np.random.default_rng(0).normal(size=(6, 12))
    weights = normalised_weights(scores, "dual", 0)
    assert (weights.sum(1) <= 1 + 1e-12).all()
    assert np.allclose(normalised_weights(scores, "sinkhorn", 50).sum(1), 1)


@pytest.mark.parametrize("bad", [{"normalize": "both"}, {"shots": "sum"}, {"scale": "d"},
                                 {"init": "zeros"}, {"embed_dim": -1}, {"sinkhorn_iters": 0},
                                 {"tau": 0.0}, {"tau": float("nan")}, {"temperature": "x"}])
def test_invalid_options_are_rejected(bad):
    from bench.errors import BenchError

    with pytest.raises(BenchError, match=next(iter(bad))):
        TaskRelatedMetric.Config(**bad).validate()


def test_learned_and_fixed_temperature():
    learned = TaskRelatedMetric(TaskRelatedMetric.Config(), in_channels=1)
    fixed = TaskRelatedMetric(TaskRelatedMetric.Config(temperature="fixed", tau=1.0), 1)
    names = {name for name, _ in learned.named_parameters()}
    assert "temperature.log_value" in names
    assert "temperature.log_value" not in {name for name, _ in fixed.named_parameters()}
    assert fixed.temperature(torch.tensor(0.5)).item() == pytest.approx(0.5)
