"""Training throughput: the harness's loop against a plain reference loop, same run, same shapes.

The harness side is the real ``bench.train.runner.train`` (learn2learn-sampled episodes over index
datasets, images gathered from the split's uint8 tensor, ``train_step`` with its NaN check and
learning-rate schedule, the per-episode log). The plain side is ``bench/perf/plain_loop.py``:
plain torch only. Both train ProtoNet on Conv-4 with the same episode shape. They run in
alternating blocks (ABBA…), each after an untimed warm-up block, and each loop's rate is the
median over its blocks, so that load from other processes hits both alike.
"""

from __future__ import annotations

import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from types import ModuleType

import torch

from bench.core.config import Cell, MethodSpec, TrainConfig
from bench.core.episodes import EpisodeSampler, episode_feed
from bench.core.model import build_model
from bench.data import ImageSet
from bench.train.runner import TrainState, make_optimizer, train, train_loop

PREFETCH = 4  # episodes sampled ahead by the worker in the "harness-prefetch" loop


@dataclass(frozen=True)
class TrainShape:
    way: int = 5
    shot: int = 1
    query: int = 15
    block: int = 25  # episodes per timed block (short blocks made the ratio noisy: ±10%)
    blocks: int = 8  # timed blocks per loop
    seed: int = 0


def load_plain_loop() -> ModuleType:
    """The plain reference loop (bench.perf.plain_loop: plain torch, nothing of the harness)."""
    from bench.perf import plain_loop

    return plain_loop


class HarnessLoop:
    """``bench.train.runner.train`` on ProtoNet, advanced ``episodes`` at a time; with
    ``prefetch`` its episodes come from one worker process kept open across blocks (``bench run
    --prefetch``)."""

    def __init__(self, images: ImageSet, channels: int, shape: TrainShape, device: torch.device,
                 prefetch: int = 0):
        torch.manual_seed(shape.seed)
        self.cell = Cell(MethodSpec("protonet"), images.name.split("/")[0], (), shape.way,
                         shape.shot, shape.query, 1, shape.seed,
                         TrainConfig(episodes=0, query=shape.query, val_every=0,
                                     checkpoint_every=0))
        self.images, self.device = images, device
        self.model = build_model(self.cell, channels).to(device)
        self.optimizer, self.scheduler = make_optimizer(self.model, self.cell)
        self.sampler = EpisodeSampler(images, shape.way, shape.shot, shape.query, shape.seed)
        self.state = TrainState()
        self.feeds = ExitStack()
        self.feed = self.feeds.enter_context(episode_feed(
            self.sampler, images.images, prefetch, device.type == "cuda")) if prefetch else None

    def run(self, episodes: int) -> float:
        target = replace(self.cell, train=replace(self.cell.train,
                                                  episodes=self.state.episode + episodes))
        start = time.perf_counter()
        if self.feed is not None:
            train_loop(self.model, self.optimizer, self.scheduler, self.feed, self.state, target,
                       self.device)
        else:
            train(self.model, self.optimizer, self.scheduler, self.sampler, self.images,
                  self.state, target, self.device)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start


def train_rows(images: ImageSet, channels: int, shape: TrainShape, device: torch.device,
               log=lambda message: None) -> list[dict]:
    """Rows ``loop, method, episodes_per_s`` (+ shape and block details) for harness and plain."""
    plain_module = load_plain_loop()
    loops = {
        "harness": HarnessLoop(images, channels, shape, device),
        "harness-prefetch": HarnessLoop(images, channels, shape, device, prefetch=PREFETCH),
        "plain": plain_module.PlainLoop(images.images, torch.from_numpy(images.labels),
                                        shape.way, shape.shot, shape.query, shape.seed, device),
        "plain-nchw": plain_module.PlainLoop(images.images, torch.from_numpy(images.labels),
                                             shape.way, shape.shot, shape.query, shape.seed,
                                             device, channels_last=False),
    }
    log(f"training throughput: harness (inline and --prefetch {PREFETCH}) vs plain loop "
        f"(channels-last and NCHW), {shape.blocks} blocks of {shape.block} "
        f"episodes each ({shape.way}-way {shape.shot}-shot {shape.query}-query)")
    for loop in loops.values():
        loop.run(shape.block)  # warm-up: allocator, thread pools, first-call kernels
    rates: dict[str, list[float]] = {name: [] for name in loops}
    for block in range(shape.blocks):
        order = list(loops) if block % 2 == 0 else list(reversed(loops))
        for name in order:
            rates[name].append(shape.block / loops[name].run(shape.block))
    loops["harness-prefetch"].feeds.close()
    size = "×".join(str(side) for side in images.images.shape[2:])
    return [{"loop": name, "method": "protonet", "episodes_per_s": statistics.median(values),
             "way": shape.way, "shot": shape.shot, "query": shape.query, "image_size": size,
             "backbone": "conv4", "blocks": shape.blocks, "block_episodes": shape.block,
             "min_episodes_per_s": min(values), "max_episodes_per_s": max(values)}
            for name, values in rates.items()]
