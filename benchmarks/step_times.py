"""Per-step cost of training on Omniglot (or --dataset): the harness's `train_step` per method,
episode shape and precision (with the dataset's training augmentation), and episode sampling alone.

Usage: python benchmarks/step_times.py --data-root ../shared/data/omniglot [--threads 2]
       [--methods protonet,cosine,trm] [--ways 20,60] [--shots 1,5] [--precisions fp32,bf16]
       python benchmarks/step_times.py --dataset cub --data-root ../shared/data/cub --ways 5
       --query 15 --precisions fp32 --threads 1
Prints one line per case: the mean of 10 steps after 3 warm-up steps (ms), wall and process CPU
time (CPU time is the steadier figure while other jobs share the cores). Like `bench`, it
keeps freed memory in the process (bench.core.env.keep_freed_memory); FEWSHOT_BENCH_SYSTEM_MALLOC=1
measures glibc's default instead.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from bench.core.cells import RunOptions, load_adapter
from bench.core.config import Cell, MethodSpec, TrainConfig
from bench.core.env import keep_freed_memory
from bench.core.episodes import EpisodeSampler
from bench.core.model import build_model
from bench.train.runner import make_optimizer, train_step

CPU = torch.device("cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", default="protonet,cosine,trm")
    parser.add_argument("--ways", default="20,60")
    parser.add_argument("--shots", default="1,5")
    parser.add_argument("--query", type=int, default=5)
    parser.add_argument("--dataset", default="omniglot")
    parser.add_argument("--precisions", default="fp32,bf16")
    args = parser.parse_args()
    print(f"keep freed memory: {keep_freed_memory()}")
    torch.set_num_threads(args.threads)
    ways = [int(w) for w in args.ways.split(",")]
    shots = [int(s) for s in args.shots.split(",")]
    options = RunOptions(out_dir=Path("."), data_root=Path(args.data_root))
    adapter = load_adapter(Cell(MethodSpec("protonet"), args.dataset, (), 5, 1, 15, 100, 0),
                           options)
    train_set, augment = adapter.load("train"), adapter.train_augmentation()
    for method in args.methods.split(","):
        for way in ways:
            for shot in shots:
                for precision in args.precisions.split(","):
                    cell = Cell(MethodSpec(method), args.dataset, (), 5, shot, 15, 100, 0,
                                TrainConfig(way=way, query=args.query, precision=precision))
                    torch.manual_seed(0)
                    model = build_model(cell, adapter.channels)
                    optimizer, scheduler = make_optimizer(model, cell)
                    sampler = EpisodeSampler(train_set, way, shot, args.query, 0)

                    def step():
                        episode = sampler.sample()
                        train_step(model, optimizer, scheduler,
                                   train_set.images[episode.indices()], episode, CPU, augment,
                                   precision)

                    for _ in range(3):
                        step()
                    start, start_cpu = time.perf_counter(), time.process_time()
                    for _ in range(10):
                        step()
                    print(f"{method} {way}-way {shot}-shot {args.query}-query {precision}: "
                          f"{(time.perf_counter() - start) / 10 * 1000:.0f} ms per step, "
                          f"{(time.process_time() - start_cpu) / 10 * 1000:.0f} ms CPU",
                          flush=True)
    for way in ways:
        for shot in shots:
            sampler = EpisodeSampler(train_set, way, shot, args.query, 0)
            start = time.perf_counter()
            for _ in range(300):
                sampler.sample()
            print(f"sampling {way}-way {shot}-shot {args.query}-query: "
                  f"{(time.perf_counter() - start) / 300 * 1000:.2f} ms per episode", flush=True)


if __name__ == "__main__":
    main()
