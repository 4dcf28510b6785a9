"""Embedding networks: Conv-4, Conv-64F and ResNet-12, the backbones of the few-shot literature.

Conv-4 (Vinyals et al. 2016, Snell et al. 2017): 4 blocks of 3×3 conv 64 + BN + ReLU + 2×2 max-pool.
Conv-64F (DN4, Li et al. 2019): the same without the last two pools, keeping a spatial map:
84×84 → 64×21×21, 28×28 → 64×7×7. ``conv64f_leaky`` is Conv-64F as the official DN4 code writes it
(``FourLayer_64F``): LeakyReLU(0.2) for ReLU and convolutions without bias (BN follows each).
ResNet-12 (TADAM, Oreshkin et al. 2018; MetaOptNet, FEAT, CAN, FRN): 4 residual blocks of 64, 160,
320 and 640 channels, each three 3×3 conv + BN + LeakyReLU(0.1) (the last activation after the
addition) with a 1×1 conv + BN shortcut, then a 2×2 max-pool: 84×84 → 640×5×5, 28×28 → 640×1×1.
(DropBlock, which some of those papers add in training, is left out.)
"""

from __future__ import annotations

import torch
from torch import nn

from bench.errors import BenchError


def conv_block(in_channels: int, out_channels: int, pool: bool, leaky: float = 0.0,
               bias: bool = True) -> nn.Sequential:
    """3×3 conv + BN + ReLU (LeakyReLU(leaky) where leaky > 0) [+ 2×2 max-pool]."""
    layers = [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=bias),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(leaky, inplace=True) if leaky else nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def conv_net(in_channels: int, pools: tuple[bool, ...], width: int = 64,
             **block_options) -> nn.Sequential:
    blocks, channels = [], in_channels
    for pool in pools:
        blocks.append(conv_block(channels, width, pool, **block_options))
        channels = width
    return nn.Sequential(*blocks)


class ResidualBlock(nn.Module):
    """Three 3×3 conv + BN (+ LeakyReLU 0.1), a 1×1 conv + BN shortcut, LeakyReLU, 2×2 max-pool."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        layers, channels = [], in_channels
        for index in range(3):
            layers += [nn.Conv2d(channels, out_channels, 3, padding=1, bias=False),
                       nn.BatchNorm2d(out_channels)]
            if index < 2:
                layers.append(nn.LeakyReLU(0.1))
            channels = out_channels
        self.body = nn.Sequential(*layers)
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                      nn.BatchNorm2d(out_channels))
        self.activation = nn.LeakyReLU(0.1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.activation(self.body(x) + self.shortcut(x)))


def resnet12(in_channels: int, widths: tuple[int, ...] = (64, 160, 320, 640)) -> nn.Sequential:
    blocks, channels = [], in_channels
    for width in widths:
        blocks.append(ResidualBlock(channels, width))
        channels = width
    return nn.Sequential(*blocks)


CONV_POOLS = {
    "conv4": (True, True, True, True),
    "conv64f": (True, True, False, False),
    "conv64f_leaky": (True, True, False, False),
}
# conv_block options of the Conv variants that are not the plain ReLU + biased convolution
CONV_OPTIONS = {"conv64f_leaky": {"leaky": 0.2, "bias": False}}  # the official DN4 Conv-64F
# name → channels of its feature maps
BACKBONES = {"conv4": 64, "conv64f": 64, "resnet12": 640, "conv64f_leaky": 64}
BACKBONE_HELP = f"embedding network: {' | '.join(BACKBONES)}"


def backbone_channels(name: str) -> int:
    """Channels C of the named backbone's feature maps [B, C, H', W']."""
    check_backbone(name)
    return BACKBONES[name]


def check_backbone(name: str) -> None:
    if name not in BACKBONES:
        raise BenchError(f"unknown backbone {name!r}; valid backbones: {', '.join(BACKBONES)}")


def make_backbone(name: str, in_channels: int) -> nn.Module:
    """The named backbone; its output is a feature map [B, backbone_channels(name), H', W']."""
    check_backbone(name)
    if name == "resnet12":
        return resnet12(in_channels)
    return conv_net(in_channels, CONV_POOLS[name], **CONV_OPTIONS.get(name, {}))
