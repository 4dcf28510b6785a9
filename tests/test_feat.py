"""FEAT's head against the paper's formula in float64 numpy: prototypes adapted by one
single-head Transformer layer (residual, layer norm), then −‖q − p'‖² / 64; its regulariser."""

import numpy as np
import torch
from bench.methods.base import TrainingEpisode
from bench.methods.feat import FEAT

from bench.core.config import Cell, MethodSpec, parse_method
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


FIVE_SHOT = "feat(temperature=32,balance=0.1,temperature2=64)"  # as the FEAT docstring gives it


def test_the_documented_five_shot_text_gives_feats_five_shot_settings():
    """FEAT's 5-shot ConvNet script: temperature 32, balance 0.1, temperature2 64; the defaults
    are the 1-shot temperatures (64, 16) with the regulariser off."""
    five = parse_method(FIVE_SHOT).config()
    assert (five.temperature, five.balance, five.temperature2) == (32.0, 0.1, 64.0)
    assert five.pool == "avg"
    default = parse_method("feat").config()
    assert (default.temperature, default.balance, default.temperature2) == (64.0, 0.0, 16.0)
    official = parse_method(FIVE_SHOT[:-1] + ",pool=max)").config()
    assert official.pool == "max" and official.temperature == 32.0
    assert FIVE_SHOT in FEAT.__doc__ and FIVE_SHOT[:-1] + ",pool=max)" in FEAT.__doc__
    one = parse_method("feat(balance=1,pool=max)").config()  # the documented official 1-shot
    assert (one.temperature, one.balance, one.temperature2, one.pool) == (64.0, 1.0, 16.0, "max")


def test_official_five_shot_form_reference_value():
    """feat(temperature=32,balance=0.1,temperature2=64,pool=max) on seeded float64 maps: max
    over positions (the official encoder's MaxPool2d(5)), the adapted prototypes, −‖q − p'‖²/32,
    and the loss + 0.1 × the regulariser at temperature2 64."""
    model = feat(temperature=32, balance=0.1, temperature2=64, pool="max").double()
    rng = np.random.default_rng(3)
    support = torch.from_numpy(rng.normal(size=(6, 64, 5, 5)))  # 3 classes × 2 shots, 5×5 maps
    query = torch.from_numpy(rng.normal(size=(6, 64, 5, 5)))
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    with torch.no_grad():
        logits = model.head(support, labels, query, 3).numpy()
        loss, _ = model.training_loss(TrainingEpisode(support, labels, query, labels, 3))
    s, q, y = support.numpy().max((2, 3)), query.numpy().max((2, 3)), labels.numpy()
    adapted = transformer(model.adapt, np.stack([s[y == c].mean(0) for c in range(3)])[None])[0]
    expected = -((q[:, None, :] - adapted[None]) ** 2).sum(-1) / 32.0
    np.testing.assert_allclose(logits, expected, rtol=1e-10)
    average = -((support.numpy().mean((2, 3))[:, None] - adapted[None]) ** 2).sum(-1)
    assert not np.allclose(logits, average / 32.0, rtol=1e-2)  # the max, not the mean

    def cross_entropy(scores, targets):
        shifted = scores - scores.max(1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
        return -log_p[np.arange(len(targets)), targets].mean()

    instances, all_labels = np.concatenate([s, q]), np.concatenate([y, y])
    centres = transformer(model.adapt, np.stack([instances[all_labels == c]
                                                 for c in range(3)])).mean(1)
    regulariser = cross_entropy(-((instances[:, None] - centres[None]) ** 2).sum(-1) / 64.0,
                                all_labels)
    np.testing.assert_allclose(loss.item(), cross_entropy(expected, y) + 0.1 * regulariser,
                               rtol=1e-10)
