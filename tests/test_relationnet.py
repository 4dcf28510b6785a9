"""RelationNet's head against the paper's formula in float64 numpy: the class map is the sum of
its support maps, concatenated (class, query) along channels, two conv blocks, FC-ReLU-FC-sigmoid;
MSE against one-hot targets (or cross-entropy)."""

import numpy as np
import torch
import torch.nn.functional as F
from bench.methods.base import TrainingEpisode

from bench.core.config import Cell, MethodSpec
from bench.core.model import build_model


def relationnet(**params):
    cell = Cell(MethodSpec("relationnet", tuple((k, str(v)) for k, v in params.items())),
                "glyphs", (), 2, 2, 1, 1, 0)
    torch.manual_seed(0)
    model = build_model(cell, 1).eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for block in model.blocks:
            block[1].running_mean.uniform_(-0.1, 0.1)
            block[1].running_var.uniform_(0.5, 2.0)
    return model


def numpy_block(block, x: np.ndarray) -> np.ndarray:
    """3×3 conv (padding 1) + BN (eval) + ReLU + 2×2 max-pool of one map [C, H, W]."""
    conv, bn = block[0], block[1]
    weight = conv.weight.detach().double().numpy()
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    height, width = x.shape[1:]
    out = np.zeros((weight.shape[0], height, width))
    for dy in range(3):
        for dx in range(3):
            window = padded[:, dy:dy + height, dx:dx + width]
            out += np.einsum("oc,chw->ohw", weight[:, :, dy, dx], window)
    out += conv.bias.detach().double().numpy()[:, None, None]
    scale = bn.weight.detach().double().numpy() / np.sqrt(bn.running_var.double().numpy() + 1e-5)
    out = (out - bn.running_mean.double().numpy()[:, None, None]) * scale[:, None, None] \
        + bn.bias.detach().double().numpy()[:, None, None]
    out = np.maximum(out, 0)
    h, w = height // 2, width // 2
    return out[:, :2 * h, :2 * w].reshape(out.shape[0], h, 2, w, 2).max((2, 4))


def relation(model, class_map: np.ndarray, query_map: np.ndarray) -> float:
    x = np.concatenate([class_map, query_map])  # the class first, as the reference code
    for block in model.blocks:
        x = numpy_block(block, x)
    hidden = np.maximum(model.fc1.weight.detach().double().numpy() @ x.mean((1, 2))
                        + model.fc1.bias.detach().double().numpy(), 0)
    return float((model.fc2.weight.detach().double().numpy() @ hidden
                  + model.fc2.bias.detach().double().numpy())[0])


def features(seed=1):
    generator = torch.Generator().manual_seed(seed)
    support = torch.randn(4, 64, 4, 4, generator=generator)
    query = torch.randn(3, 64, 4, 4, generator=generator)
    return support, torch.tensor([0, 0, 1, 1]), query


def expected_scores(model, support, labels, query):
    s, q = support.double().numpy(), query.double().numpy()
    classes = [s[labels.numpy() == c].sum(0) for c in range(2)]  # K-shot: the sum
    return np.array([[relation(model, c, qi) for c in classes] for qi in q])


def test_head_is_the_sigmoid_relation_score_of_summed_class_maps():
    model = relationnet()
    support, labels, query = features()
    with torch.no_grad():
        scores = model.head(support, labels, query, 2).double().numpy()
    raw = expected_scores(model, support, labels, query)
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-raw)), rtol=1e-4, atol=1e-5)


def test_loss_is_mse_against_one_hot_or_cross_entropy():
    support, labels, query = features(2)
    query_labels = torch.tensor([1, 0, 1])
    onehot = np.eye(2)[query_labels.numpy()]
    for loss_name in ("mse", "ce"):
        model = relationnet(loss=loss_name)
        with torch.no_grad():
            loss, _ = model.training_loss(TrainingEpisode(support, labels, query, query_labels,
                                                          2))
        raw = expected_scores(model, support, labels, query)
        if loss_name == "mse":
            expected = ((1 / (1 + np.exp(-raw)) - onehot) ** 2).mean()
        else:
            expected = F.cross_entropy(torch.from_numpy(raw), query_labels).item()
        np.testing.assert_allclose(loss.item(), expected, rtol=1e-4)


def test_feature_maps_at_28_and_84():
    """Conv-64F keeps 7×7 (28×28) and 21×21 (84×84) maps; the relation blocks take them to 1×1
    (the paper's Omniglot FC input, 64) and 5×5 (averaged to 64)."""
    model = relationnet()
    for size, side, after in ((28, 7, 1), (84, 21, 5)):
        with torch.no_grad():
            maps = model.embed(torch.zeros(2, 1, size, size))
            assert maps.shape == (2, 64, side, side)
            pairs = torch.cat([maps, maps], dim=1)
            assert model.blocks(pairs).shape == (2, 64, after, after)
            assert model.head(maps[:1], torch.tensor([0]), maps, 1).shape == (2, 1)
