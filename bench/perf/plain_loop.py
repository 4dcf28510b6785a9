"""A plain ProtoNet training loop: the reference `bench perf` holds the harness's loop against.

Written the way a careful user would write it by hand, with plain torch and nothing from
fewshot-bench: its own Conv-4 (4 × [3×3 conv 64, BatchNorm, ReLU, 2×2 max-pool], as
bench/methods/backbones.py), episodes drawn with ``torch.randperm`` straight from a uint8 image
tensor, squared-Euclidean ProtoNet logits, cross-entropy and Adam. No validation, logging,
NaN checks or learning-rate schedule: whatever the harness spends on those is its overhead.
Its convolutions run channels-last, as the harness's do (``channels_last=False``: the default
NCHW layout most code uses, 1.5× slower on a 2-core Xeon), so that the two differ by the loop only.

Standalone: ``python -m bench.perf.plain_loop --episodes 50`` times it on random images.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn


def conv4(in_channels: int, width: int = 64) -> nn.Sequential:
    blocks, channels = [], in_channels
    for _ in range(4):
        blocks += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.BatchNorm2d(width),
                   nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        channels = width
    return nn.Sequential(*blocks)


class PlainLoop:
    """ProtoNet episodes of ``way`` classes × (``shot`` + ``query``) images, trained one by one."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, way: int, shot: int,
                 query: int, seed: int = 0, device: str | torch.device = "cpu", lr: float = 1e-3,
                 channels_last: bool = True):
        torch.manual_seed(seed)
        self.images, self.device = images, torch.device(device)
        self.way, self.shot, self.query = way, shot, query
        self.class_indices = [torch.nonzero(labels == label).flatten()
                              for label in torch.unique(labels)]
        self.generator = torch.Generator().manual_seed(seed)
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        self.model = conv4(images.shape[1]).to(self.device, memory_format=self.layout)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.targets = torch.arange(way, device=self.device).repeat_interleave(query)

    def sample(self) -> torch.Tensor:
        """Image indices: the support of every class, then the queries of every class."""
        classes = torch.randperm(len(self.class_indices), generator=self.generator)[: self.way]
        rows = []
        for label in classes.tolist():
            members = self.class_indices[label]
            order = torch.randperm(len(members), generator=self.generator)
            rows.append(members[order[: self.shot + self.query]])
        rows = torch.stack(rows)
        return torch.cat([rows[:, : self.shot].reshape(-1), rows[:, self.shot:].reshape(-1)])

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """−‖query − prototype‖² [way·query, way]; ``batch`` holds the support, then the queries."""
        features = self.model(batch.contiguous(memory_format=self.layout)).flatten(1)
        n_support = self.way * self.shot
        prototypes = features[:n_support].view(self.way, self.shot, -1).mean(1)
        return -torch.cdist(features[n_support:], prototypes).pow(2)

    def step(self) -> torch.Tensor:
        """One training episode; returns the loss (a tensor, so nothing waits on the device)."""
        self.model.train()
        batch = self.images[self.sample()].to(self.device).float().div_(255.0)
        loss = F.cross_entropy(self.logits(batch), self.targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss

    def run(self, episodes: int) -> float:
        """Seconds taken by ``episodes`` training episodes (waiting for the device at the end)."""
        start = time.perf_counter()
        for _ in range(episodes):
            self.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nchw", action="store_true", help="default layout, not channels-last")
    args = parser.parse_args()
    images = torch.randint(0, 256, (args.classes * 20, 1, args.size, args.size), dtype=torch.uint8)
    labels = torch.arange(args.classes).repeat_interleave(20)
    loop = PlainLoop(images, labels, way=5, shot=1, query=15, device=args.device,
                     channels_last=not args.nchw)
    loop.run(2)
    seconds = loop.run(args.episodes)
    print(f"{args.episodes / seconds:.2f} episodes/s (5-way 1-shot 15-query, "
          f"{args.size}×{args.size}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
