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


def numpy_blocks_on_batch(blocks, x: np.ndarray) -> np.ndarray:
    """Conv blocks (3×3 conv, BN, ReLU, [2×2 max-pool]) on a batch [N, C, H, W], each BN
    normalising by this batch's statistics (mean and biased variance over N, H, W), float64."""
    for block in blocks:
        conv, bn = block[0], block[1]
        weight = conv.weight.detach().double().numpy()
        padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        height, width = x.shape[2:]
        out = np.zeros((len(x), weight.shape[0], height, width))
        for dy in range(3):
            for dx in range(3):
                out += np.einsum("oc,nchw->nohw", weight[:, :, dy, dx],
                                 padded[:, :, dy:dy + height, dx:dx + width])
        if conv.bias is not None:
            out += conv.bias.detach().double().numpy()[:, None, None]
        mean, var = out.mean((0, 2, 3)), out.var((0, 2, 3))
        out = (out - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5) \
            * bn.weight.detach().double().numpy()[:, None, None] \
            + bn.bias.detach().double().numpy()[:, None, None]
        x = np.maximum(out, 0)
        if len(block) > 3:  # the 2×2 max-pool
            h, w = x.shape[2] // 2, x.shape[3] // 2
            x = x[:, :, :2 * h, :2 * w].reshape(*x.shape[:2], h, 2, w, 2).max((3, 5))
    return x


def batch_statistics_scores(model, support, labels, query) -> np.ndarray:
    """Pre-sigmoid scores with the relation module normalised by the batch of all the episode's
    (class, query) pairs, as the official test does (its BatchNorm stays in training mode)."""
    s, q = support.double().numpy(), query.double().numpy()
    classes = [s[labels.numpy() == c].sum(0) for c in range(2)]
    pairs = np.stack([np.concatenate([c, qi]) for qi in q for c in classes])  # query-major
    maps = numpy_blocks_on_batch(model.blocks, pairs).mean((2, 3))
    hidden = np.maximum(maps @ model.fc1.weight.detach().double().numpy().T
                        + model.fc1.bias.detach().double().numpy(), 0)
    out = hidden @ model.fc2.weight.detach().double().numpy().T \
        + model.fc2.bias.detach().double().numpy()
    return out.reshape(len(q), 2)


def norm_state(model):
    return {name: tensor.clone() for name, tensor in model.state_dict().items()
            if "running" in name or "num_batches" in name}


def test_test_bn_batch_is_the_official_test_of_the_head():
    """test_bn=batch, in eval mode: the relation module's BatchNorm uses the episode's batch
    statistics (not the running ones), which stay untouched; training mode is unchanged."""
    support, labels, query = (t.double() if t.is_floating_point() else t for t in features(3))
    official, plain = relationnet(test_bn="batch").double(), relationnet().double()
    before = norm_state(official)
    with torch.no_grad():
        scores = official.head(support, labels, query, 2).numpy()
        running = plain.head(support, labels, query, 2).numpy()
    expected = batch_statistics_scores(official, support, labels, query)
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-expected)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(running, 1 / (1 + np.exp(-expected_scores(plain, support, labels,
                                                                          query))), rtol=1e-10)
    assert not np.allclose(scores, running, atol=1e-3)
    after = norm_state(official)
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert all(not m.training and m.track_running_stats for m in official.modules()
               if isinstance(m, torch.nn.BatchNorm2d))
    official.train(), plain.train()
    with torch.no_grad():  # in training both use batch statistics: the same scores
        np.testing.assert_allclose(official.head(support, labels, query, 2).numpy(),
                                   plain.head(support, labels, query, 2).numpy(), rtol=1e-12)


def test_test_bn_batch_reference_value_of_the_whole_model():
    """The official test on seeded float64 images: the encoder embeds the support images as one
    batch and the query images as another, each BatchNorm by its batch's statistics, then the
    relation module on the batch of pairs; the running statistics stay as they were, and
    evaluation embeds each episode on its own (no cache)."""
    model = relationnet(test_bn="batch").double()
    assert model.needs_images and not relationnet().needs_images
    with torch.no_grad():
        for norm in (m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            norm.running_mean.uniform_(-0.1, 0.1)
            norm.running_var.uniform_(0.5, 2.0)
    rng = np.random.default_rng(5)
    support_images = torch.from_numpy(rng.normal(size=(4, 1, 16, 16)))  # → 64×4×4 maps
    query_images = torch.from_numpy(rng.normal(size=(3, 1, 16, 16)))
    labels = torch.tensor([0, 1, 0, 1])
    before = norm_state(model)
    with torch.no_grad():
        scores = model(support_images, labels, query_images, 2).numpy()
        cached = model.head(model.embed(support_images), labels, model.embed(query_images), 2)
    support_maps, query_maps = (torch.from_numpy(numpy_blocks_on_batch(model.backbone,
                                                                       images.numpy()))
                                for images in (support_images, query_images))
    expected = batch_statistics_scores(model, support_maps, labels, query_maps)
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-expected)), rtol=1e-10, atol=1e-12)
    assert not np.allclose(scores, cached.numpy(), atol=1e-3)  # the encoder's statistics matter
    after = norm_state(model)
    assert all(torch.equal(before[name], after[name]) for name in before)


def test_test_bn_is_left_out_of_ids_at_its_default():
    from bench.core.config import identity_params, parse_method

    assert "test_bn" not in identity_params(parse_method("relationnet").config())
    assert identity_params(parse_method("relationnet(test_bn=batch)").config())["test_bn"] \
        == "batch"
