"""FRN's ridge reconstruction against the paper's formula (eq. 8) in float64 numpy."""

import numpy as np
import pytest
import torch
from bench.methods.base import TrainingEpisode
from bench.methods.frn import FeatureMapReconstruction

from bench.core.config import identity_params, parse_method
from bench.errors import BenchError


def reference_frn(support, labels, query, n_way, alpha, beta, gamma, ridge=True):
    """Q̂ = ρ Q Sᵀ(S Sᵀ + λI)⁻¹ S, λ = (K·r/d)e^α + 1e-6, ρ = e^β; logit = −γ·mean_p ‖q_p − q̂_p‖²,
    written with explicit per-class matrices and inverses (no Woodbury)."""
    def rows(maps):  # [N, d, H, W] → [N, r, d]
        return maps.reshape(maps.shape[0], maps.shape[1], -1).transpose(0, 2, 1)

    support_rows, query_rows = rows(support), rows(query)
    logits = np.zeros((len(query), n_way))
    for c in range(n_way):
        s = np.concatenate([support_rows[i] for i in range(len(labels)) if labels[i] == c])
        kr, d = s.shape
        lam = (kr / d) * np.exp(alpha) + 1e-6 if ridge else 0.0
        projection = s.T @ np.linalg.inv(s @ s.T + lam * np.eye(kr)) @ s
        for q, local in enumerate(query_rows):
            rebuilt = np.exp(beta) * local @ projection
            logits[q, c] = -gamma * np.mean([np.sum((a - b) ** 2) for a, b in zip(local, rebuilt)])
    return logits


def frn_logits(config_text, support, labels, query, n_way):
    model = FeatureMapReconstruction(parse_method(config_text).config(), 1)
    with torch.no_grad():
        return model.head(torch.from_numpy(support), torch.from_numpy(labels),
                          torch.from_numpy(query), n_way).double().numpy()


def episode(channels, side, shots, seed=0):
    rng = np.random.default_rng(seed)
    support = rng.normal(size=(3 * shots, channels, side, side)).astype(np.float32)
    labels = np.tile(np.arange(3), shots)
    query = rng.normal(size=(4, channels, side, side)).astype(np.float32)
    return support, labels, query


@pytest.mark.parametrize("channels, side, shots", [(8, 1, 2), (6, 2, 1), (3, 2, 2)],
                         ids=["K·r<d", "K·r<d-spatial", "K·r>d (d×d form)"])
def test_head_matches_the_ridge_formula(channels, side, shots):
    support, labels, query = episode(channels, side, shots)
    config = "frn(alpha=0.4,beta=-0.3,gamma=1.7)"
    logits = frn_logits(config, support, labels, query, 3)
    expected = reference_frn(support.astype(np.float64), labels, query.astype(np.float64), 3,
                             0.4, -0.3, 1.7)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)


def test_initial_scalars_and_lambda_matter():
    """α = β = 0, γ = 1 at the start; a head without λ (plain least squares) would differ."""
    support, labels, query = episode(6, 2, 1, seed=3)  # K·r = 4 < d: S Sᵀ invertible
    logits = frn_logits("frn", support, labels, query, 3)
    args = (support.astype(np.float64), labels, query.astype(np.float64), 3)
    np.testing.assert_allclose(logits, reference_frn(*args, 0.0, 0.0, 1.0), rtol=1e-4, atol=1e-5)
    assert not np.allclose(logits, reference_frn(*args, 0.0, 0.0, 1.0, ridge=False), rtol=1e-2)
    model = FeatureMapReconstruction(parse_method("frn").config(), 1)
    assert {name for name, _ in model.named_parameters()} >= {"alpha", "beta", "gamma"}


def test_scalars_are_learned():
    support, labels, query = (torch.from_numpy(array) for array in episode(3, 2, 2))
    model = FeatureMapReconstruction(parse_method("frn").config(), 1)
    loss = torch.nn.functional.cross_entropy(model.head(support, labels, query, 3),
                                             torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert all(float(p.grad.abs()) > 0 for p in (model.alpha, model.beta, model.gamma))


def reference_aux(support, labels, n_way):
    """The official auxrank, written out: Σ_{i>j} ‖Ŝ_i Ŝ_jᵀ‖_F², Ŝ = S / ‖S‖_F of the whole
    [n_way, K·r, d] support tensor, S_c the class's descriptors (shots in order, positions rows)."""
    rows = support.reshape(support.shape[0], support.shape[1], -1).transpose(0, 2, 1)
    classes = np.stack([np.concatenate([rows[i] for i in range(len(labels)) if labels[i] == c])
                        for c in range(n_way)])
    unit = classes / np.sqrt((classes ** 2).sum())
    return sum(np.sum((unit[i] @ unit[j].T) ** 2) for i in range(n_way) for j in range(i))


@pytest.mark.parametrize("channels, side, shots", [(8, 1, 2), (3, 2, 2)])
def test_auxiliary_loss_matches_the_official_term(channels, side, shots):
    support, labels, query = episode(channels, side, shots, seed=5)
    query_labels = torch.tensor([0, 1, 2, 0])
    tensors = dict(support=torch.from_numpy(support), support_labels=torch.from_numpy(labels),
                   query=torch.from_numpy(query), query_labels=query_labels, n_way=3)
    plain = FeatureMapReconstruction(parse_method("frn").config(), 1)
    with_aux = FeatureMapReconstruction(parse_method("frn(aux=0.03)").config(), 1)
    with torch.no_grad():
        loss, logits = plain.training_loss(TrainingEpisode(**tensors))
        loss_aux, _ = with_aux.training_loss(TrainingEpisode(**tensors))
    ce = torch.nn.functional.cross_entropy(logits, query_labels)
    assert float(loss) == pytest.approx(float(ce))
    expected = 0.03 * reference_aux(support.astype(np.float64), labels, 3)
    assert expected > 1e-4
    assert float(loss_aux - loss) == pytest.approx(expected, rel=1e-4)


def test_negative_aux_is_refused():
    with pytest.raises(BenchError, match="aux=-1.0 of frn must be ≥ 0"):
        parse_method("frn(aux=-1)").config().validate()


def test_aux_is_left_out_of_ids_at_its_default():
    """Cells recorded before aux existed keep their ids; a run with aux on is a new cell."""
    assert "aux" not in identity_params(parse_method("frn").config())
    assert identity_params(parse_method("frn(aux=0.03)").config())["aux"] == 0.03


def test_resnet_scale_divides_resnet12_maps_by_sqrt_640():
    """The official form at ResNet-12: the head reads the maps as map / √640 (seeded float64
    inputs; the reference is the explicit ridge formula on the scaled maps)."""
    rng = np.random.default_rng(11)
    support = rng.normal(size=(6, 640, 2, 2))  # 3 classes × 2 shots: K·r = 8 < d = 640
    labels = np.tile(np.arange(3), 2)
    query = 0.8 * support[:4] + 0.6 * rng.normal(size=(4, 640, 2, 2))  # near a class's span
    params = "alpha=3,beta=-0.3,gamma=1.7"
    scaled = frn_logits(f"frn(backbone=resnet12,resnet_scale=true,{params})", support, labels,
                        query, 3)
    root = np.sqrt(640.0)
    expected = reference_frn(support / root, labels, query / root, 3, 3.0, -0.3, 1.7)
    np.testing.assert_allclose(scaled, expected, rtol=1e-6)
    plain = frn_logits(f"frn(backbone=resnet12,{params})", support, labels, query, 3)
    np.testing.assert_allclose(plain, reference_frn(support, labels, query, 3, 3.0, -0.3, 1.7),
                               rtol=1e-6)
    # λ weighs 640 times more against the scaled Gram matrix: not a mere rescaling of the logits
    assert not np.allclose(scaled, plain / 640, rtol=1e-2)


def test_resnet_scale_is_resnet12_only_and_left_out_of_ids_at_its_default():
    with pytest.raises(BenchError, match="backbone=conv4 is not resnet12"):
        parse_method("frn(resnet_scale=true)").config()
    assert "resnet_scale" not in identity_params(parse_method("frn(backbone=resnet12)").config())
    on = parse_method("frn(backbone=resnet12,resnet_scale=true)").config()
    assert identity_params(on)["resnet_scale"] is True
