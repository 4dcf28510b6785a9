"""DN4's image-to-class measure against explicit float64 loops over local descriptors."""

import numpy as np
import pytest
import torch
from bench.methods.dn4 import DN4

from bench.core.config import parse_method
from bench.errors import BenchError


def reference_dn4(support, labels, query, n_way, k):
    """Σ over query descriptors of the sum of its k largest cosines to the class's descriptors,
    the class's descriptors pooled over all its shots (image-to-class, not image-to-image)."""
    def local(maps):  # [N, C, H, W] → list of [HW, C] unit rows
        rows = maps.reshape(maps.shape[0], maps.shape[1], -1).transpose(0, 2, 1)
        return rows / np.linalg.norm(rows, axis=-1, keepdims=True)

    support_rows, query_rows = local(support), local(query)
    logits = np.zeros((len(query), n_way))
    for q, descriptors in enumerate(query_rows):
        for c in range(n_way):
            pool = np.concatenate([support_rows[i] for i in range(len(labels)) if labels[i] == c])
            for x in descriptors:
                cosines = sorted((float(x @ y) for y in pool), reverse=True)
                logits[q, c] += sum(cosines[:k])
    return logits


@pytest.fixture
def episode():
    rng = np.random.default_rng(0)
    support = rng.normal(size=(6, 4, 2, 2))  # 3 classes × 2 shots, 4 descriptors each
    labels = np.array([0, 1, 2, 0, 1, 2])
    query = rng.normal(size=(4, 4, 2, 2))
    return support, labels, query


def dn4_head(config_text, support, labels, query, n_way):
    model = DN4(parse_method(config_text).config(), 1)
    with torch.no_grad():
        return model.head(torch.from_numpy(support), torch.from_numpy(labels),
                          torch.from_numpy(query), n_way).numpy()


def test_head_is_the_sum_of_top3_cosines_to_the_class_pool(episode):
    support, labels, query = episode
    logits = dn4_head("dn4", support, labels, query, 3)
    np.testing.assert_allclose(logits, reference_dn4(support, labels, query, 3, k=3), rtol=1e-10)
    # a plausible mistake is caught: k = 1 (nearest neighbour only) gives other logits
    assert not np.allclose(logits, reference_dn4(support, labels, query, 3, k=1), rtol=1e-3)


def test_neighbors_parameter_sets_k(episode):
    support, labels, query = episode
    logits = dn4_head("dn4(neighbors=5)", support, labels, query, 3)
    np.testing.assert_allclose(logits, reference_dn4(support, labels, query, 3, k=5), rtol=1e-10)


def test_query_blocks_change_nothing(episode, monkeypatch):
    """Blocks of one query image each (the memory bound) give the same logits and gradients."""
    support, labels, query = episode
    model = DN4(parse_method("dn4").config(), 1)

    def logits_and_gradient():
        query_tensor = torch.from_numpy(query).requires_grad_()
        logits = model.head(torch.from_numpy(support), torch.from_numpy(labels), query_tensor, 3)
        (logits * torch.arange(3.0, dtype=logits.dtype)).sum().backward()
        return logits.detach().numpy(), query_tensor.grad.numpy()

    whole, whole_gradient = logits_and_gradient()
    monkeypatch.setattr("bench.methods._local.BLOCK_BYTES", 1)
    blocked, blocked_gradient = logits_and_gradient()
    np.testing.assert_allclose(blocked, whole, rtol=1e-12)
    np.testing.assert_allclose(blocked_gradient, whole_gradient, rtol=1e-12)
    assert np.abs(whole_gradient).sum() > 0


def test_too_few_descriptors_is_a_one_line_error():
    model = DN4(parse_method("dn4").config(), 1)
    support, query = torch.rand(2, 4, 1, 1), torch.rand(3, 4, 1, 1)  # 1×1 maps, 1 shot
    with pytest.raises(BenchError, match="neighbors=3 exceeds the 1 descriptors"):
        model.head(support, torch.tensor([0, 1]), query, 2)


def official_conv64f(in_channels):
    """The official DN4 encoder as its code writes it (``FourLayer_64F`` with BatchNorm, so
    ``use_bias`` is False): LeakyReLU(0.2), bias-free convolutions, pools after blocks 1 and 2."""
    nn = torch.nn

    def block(channels, pool):
        layers = [nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False),
                  nn.BatchNorm2d(64), nn.LeakyReLU(0.2, True)]
        return layers + ([nn.MaxPool2d(kernel_size=2, stride=2)] if pool else [])

    return nn.Sequential(*block(in_channels, True), *block(64, True), *block(64, False),
                         *block(64, False))


def test_official_form_reference_value():
    """``dn4(backbone=conv64f_leaky)`` on seeded float64 images equals the official encoder
    (written above, given the same weights) followed by the float64 image-to-class k-NN."""
    torch.manual_seed(0)
    model = DN4(parse_method("dn4(backbone=conv64f_leaky)").config(), 3).double().eval()
    with torch.no_grad():  # BatchNorm that is not the identity
        for norm in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            norm.running_mean.uniform_(-0.2, 0.2)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.2, 0.2)
    official = official_conv64f(3).double().eval()
    weights = list(model.backbone.state_dict().values())
    assert len(weights) == len(official.state_dict())  # every tensor has its official place
    official.load_state_dict(dict(zip(official.state_dict(), weights)))

    rng = np.random.default_rng(7)
    support = torch.from_numpy(rng.normal(size=(6, 3, 8, 8)))  # 3 classes × 2 shots; 2×2 maps
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    query = torch.from_numpy(rng.normal(size=(5, 3, 8, 8)))
    with torch.no_grad():
        logits = model(support, labels, query, 3).numpy()
        maps = [official(images).numpy() for images in (support, query)]
    expected = reference_dn4(maps[0], labels.numpy(), maps[1], 3, k=3)
    np.testing.assert_allclose(logits, expected, rtol=1e-10)

    torch.manual_seed(0)  # the same seed with the harness's Conv-64F: other logits
    plain = DN4(parse_method("dn4").config(), 3).double().eval()
    with torch.no_grad():
        assert not np.allclose(plain(support, labels, query, 3).numpy(), logits, rtol=1e-3)
