"""Conv-4 and Conv-64F embeddings, the backbones of the few-shot literature's small-network track.

Conv-4 (Vinyals et al. 2016, Snell et al. 2017): 4 blocks of 3×3 conv 64 + BN + ReLU + 2×2 max-pool.
Conv-64F (DN4, Li et al. 2019): the same without the last two pools, keeping a spatial map:
84×84 → 64×21×21, 28×28 → 64×7×7.
"""

from __future__ import annotations

from torch import nn

from bench.errors import BenchError


def conv_block(in_channels: int, out_channels: int, pool: bool) -> nn.Sequential:
    layers = [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def conv_net(in_channels: int, pools: tuple[bool, ...], width: int = 64) -> nn.Sequential:
    blocks, channels = [], in_channels
    for pool in pools:
        blocks.append(conv_block(channels, width, pool))
        channels = width
    return nn.Sequential(*blocks)


BACKBONES = {
    "conv4": (True, True, True, True),
    "conv64f": (True, True, False, False),
}


def make_backbone(name: str, in_channels: int) -> nn.Module:
    """The named backbone; its output is a feature map [B, 64, H', W']."""
    if name not in BACKBONES:
        raise BenchError(f"unknown backbone {name!r}; valid backbones: {', '.join(BACKBONES)}")
    return conv_net(in_channels, BACKBONES[name])
