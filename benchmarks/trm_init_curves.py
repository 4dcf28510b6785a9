"""Learning curves of TRM's initialisations against the cosine baseline (does TRM start at
chance?).

Each method trains on 5-way 1-shot 15-query episodes (Adam 1e-3, seed 0, the harness's
``train``) and is evaluated on the same fixed validation episodes after 0, 50, 100, 200 and 500
training episodes. Writes CURVES.csv (accuracy ± 95% CI per method and checkpoint) and
PAIRED.csv (paired differences against the first method, same episodes) into --out.

    python benchmarks/trm_init_curves.py --dataset glyphs --out results/reference/trm-init
    python benchmarks/trm_init_curves.py --dataset omniglot --data-root ../shared/data/omniglot \\
        --out results/reference/trm-init
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pandas as pd
import torch

from bench.core.cells import RunOptions, load_adapter
from bench.core.config import Cell, TrainConfig, parse_methods
from bench.core.env import keep_freed_memory
from bench.core.episodes import EpisodeSampler, fixed_episodes
from bench.core.model import build_model
from bench.evaluate.episodic import evaluate
from bench.stats import mean_ci, paired_test
from bench.train.runner import TrainState, make_optimizer, train

CPU = torch.device("cpu")


def curve(spec, dataset: str, adapter, checkpoints, val_episodes, seed: int) -> list[dict]:
    train_set, val_set = adapter.load("train"), adapter.load("val")
    cell = Cell(spec, dataset, (), 5, 1, 15, 0, seed, TrainConfig(episodes=0, val_every=0))
    torch.manual_seed(seed)
    model = build_model(cell, adapter.channels)
    optimizer, scheduler = make_optimizer(model, cell)
    sampler = EpisodeSampler(train_set, 5, 1, 15, seed)
    state, rows, start = TrainState(), [], time.perf_counter()
    for episodes in checkpoints:
        stage = dataclasses.replace(cell, train=dataclasses.replace(cell.train,
                                                                    episodes=episodes))
        train(model, optimizer, scheduler, sampler, train_set, state, stage, CPU,
              augment=adapter.train_augmentation())
        accuracies = evaluate(model.eval(), val_set, val_episodes, CPU)
        model.train()
        acc, ci95 = mean_ci(accuracies, "normal")
        rows.append({"dataset": dataset, "method": spec.label, "episode": episodes,
                     "acc": round(100 * acc, 2), "ci95": round(100 * ci95, 2),
                     "seconds": round(time.perf_counter() - start, 1),
                     "per_episode": accuracies})
        print(f"{dataset} {spec.label:>24} @ {episodes:>4}: {100 * acc:6.2f} ± {100 * ci95:.2f}",
              flush=True)
    return rows


def paired_rows(rows: list[dict]) -> list[dict]:
    frame = pd.DataFrame(rows)
    reference = frame["method"].iloc[0]
    paired = []
    for (dataset, method, episode), group in frame.groupby(["dataset", "method", "episode"],
                                                           sort=False):
        if method == reference:
            continue
        base = frame[(frame["dataset"] == dataset) & (frame["method"] == reference)
                     & (frame["episode"] == episode)].iloc[0]
        test = paired_test(group.iloc[0]["per_episode"], base["per_episode"])
        paired.append({"dataset": dataset, "method": method, "episode": episode,
                       "reference": reference, "difference": round(100 * test.mean_diff, 2),
                       "ci95": round(100 * test.ci95, 2), "p_t": test.t_p})
    return paired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="glyphs")
    parser.add_argument("--data-root")
    parser.add_argument("--methods", default="trm,trm(init=random),cosine")
    parser.add_argument("--checkpoints", default="0,50,100,200,500")
    parser.add_argument("--val-episodes", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    specs = parse_methods(args.methods)
    options = RunOptions(out_dir=args.out, data_root=args.data_root and Path(args.data_root))
    adapter = load_adapter(Cell(specs[0], args.dataset, (), 5, 1, 15, 0, args.seed), options)
    val_episodes = fixed_episodes(adapter.load("val"), 5, 1, 15, args.val_episodes, args.seed)
    checkpoints = [int(c) for c in args.checkpoints.split(",")]
    rows = [row for spec in specs
            for row in curve(spec, args.dataset, adapter, checkpoints, val_episodes, args.seed)]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("CURVES", pd.DataFrame(rows).drop(columns="per_episode")),
                        ("PAIRED", pd.DataFrame(paired_rows(rows)))):
        path = args.out / f"{name}-{args.dataset}.csv"
        frame.to_csv(path, index=False)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
