"""Backbone shapes: Conv-4, Conv-64F (and the official DN4's), and ResNet-12 (5×5×640 at 84×84);
every method takes each."""

import pytest
import torch
from bench.methods.backbones import BACKBONES, backbone_channels, make_backbone

from bench.core.config import Cell, MethodSpec
from bench.registry import METHODS


@pytest.mark.parametrize("name, size, shape", [
    ("conv4", 28, (64, 1, 1)), ("conv4", 84, (64, 5, 5)),
    ("conv64f", 28, (64, 7, 7)), ("conv64f", 84, (64, 21, 21)),
    ("conv64f_leaky", 28, (64, 7, 7)), ("conv64f_leaky", 84, (64, 21, 21)),
    ("resnet12", 84, (640, 5, 5)), ("resnet12", 28, (640, 1, 1)),
])
def test_feature_map_shapes(name, size, shape):
    net = make_backbone(name, 3).eval()
    with torch.no_grad():
        assert net(torch.zeros(2, 3, size, size)).shape == (2, *shape)
    assert backbone_channels(name) == shape[0]


def test_resnet12_blocks_are_the_papers():
    """64-160-320-640, three 3×3 conv + BN each (LeakyReLU 0.1), a 1×1 conv shortcut."""
    net = make_backbone("resnet12", 3)
    assert [block.shortcut[0].out_channels for block in net] == [64, 160, 320, 640]
    for block in net:
        convs = [m for m in block.body if isinstance(m, torch.nn.Conv2d)]
        assert [c.kernel_size for c in convs] == [(3, 3)] * 3
        assert block.shortcut[0].kernel_size == (1, 1)
        assert block.activation.negative_slope == 0.1


@pytest.mark.parametrize("method", [m for m in METHODS.names() if m != "trm"])
def test_every_method_takes_resnet12(method):
    """The help string lists it, and the head runs on its 640-channel maps (84×84: 5×5)."""
    config_cls = METHODS.get(method).Config
    assert "resnet12" in config_cls.__dataclass_fields__["backbone"].metadata["help"]
    cell = Cell(MethodSpec(method, (("backbone", "resnet12"),)), "glyphs", (), 2, 1, 1, 1, 0)
    from bench.core.model import build_model

    model = build_model(cell, 1, n_base_classes=4, image_size=84).eval()
    features = torch.randn(4, 640, 5, 5)
    with torch.no_grad():
        assert model.head(features[:2], torch.tensor([0, 1]), features[2:], 2).shape == (2, 2)


def test_backbones_listed():
    assert set(BACKBONES) == {"conv4", "conv64f", "resnet12", "conv64f_leaky"}


def layers(net, kind):
    return [m for m in net.modules() if isinstance(m, kind)]


def test_conv64f_leaky_is_the_official_dn4_conv64f():
    """DN4's FourLayer_64F: 4 × [3×3 conv 64 without bias, BN, LeakyReLU(0.2)], 2×2 max-pools after
    the first two; Conv-64F itself keeps ReLU and biased convolutions."""
    official, plain = make_backbone("conv64f_leaky", 3), make_backbone("conv64f", 3)
    convs = layers(official, torch.nn.Conv2d)
    assert [c.out_channels for c in convs] == [64] * 4 and all(c.bias is None for c in convs)
    assert [c.kernel_size for c in convs] == [(3, 3)] * 4
    assert [a.negative_slope for a in layers(official, torch.nn.LeakyReLU)] == [0.2] * 4
    assert not layers(official, torch.nn.ReLU) and len(layers(official, torch.nn.MaxPool2d)) == 2
    assert len(layers(official, torch.nn.BatchNorm2d)) == 4
    assert all(c.bias is not None for c in layers(plain, torch.nn.Conv2d))
    assert len(layers(plain, torch.nn.ReLU)) == 4 and not layers(plain, torch.nn.LeakyReLU)
    # the layer order of each block: conv, BN, activation (then the pool)
    assert [type(m).__name__ for m in official[0]] == ["Conv2d", "BatchNorm2d", "LeakyReLU",
                                                       "MaxPool2d"]
    assert backbone_channels("conv64f_leaky") == 64


def test_a_method_whose_help_lists_fewer_backbones_refuses_the_others():
    """trm's backbone help lists conv4 | conv64f (its width is fixed at 64): a one-line error."""
    from bench.core.config import parse_methods
    from bench.errors import BenchError

    with pytest.raises(BenchError, match="valid backbones: conv4, conv64f"):
        parse_methods("trm(backbone=resnet12)")
