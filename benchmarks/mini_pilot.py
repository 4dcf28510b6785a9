"""Pilot for the 84×84 CPU reference sets: what learns fastest per CPU-second (issues 14, 19).

One arm per call: train one model with the harness's own pieces (`bench.train.runner.train_loop`,
`train_step`, learn2learn episodes, the dataset's augmentation) until the process has used
``--cpu-seconds`` of CPU time (checked every 10 episodes), then evaluate it on the same fixed
5-way 1-shot 15-query episodes of the *validation* split for every arm (seed 0), so arms compare
pairwise, episode by episode, and the test split stays unseen. Appends one row to
``OUT/pilot.csv`` and the per-episode accuracies to ``OUT/pilot/<arm>.npy``.

``--pretrain-epochs N`` first trains the backbone as a plain classifier over all base classes
(`bench.train.pretrain.train_backbone`, Chen et al.'s Baseline recipe: batch
``--pretrain-batch``, Adam ``--lr``, the same augmentation), inside the same CPU budget; the
episodic training then uses what is left of it (none when the epochs take it all: the arm is
then pre-training alone, and its row's CPU seconds say by how much it overran; the epochs are
never cut short). It cannot be combined with ``--normalize on`` (pre-training would see other
inputs than the episodes).
With ``--dataset cub`` give ``--data-root`` and ``--out`` too (their defaults are miniImageNet's).

``--normalize on`` standardises the input per channel with the training split's mean and std
(wrapped around the model's ``embed``, train and evaluation alike); the harness has no such option.

Usage (one arm):
  nice -n 10 python benchmarks/mini_pilot.py --arm P-T64 --method 'protonet(temperature=64)' \\
      --train-way 5 --train-query 15 --cpu-seconds 220 --threads 1 \\
      --data-root ../shared/data/miniimagenet --out results/reference/mini-imagenet-cpu
Summary table of all arms (paired differences against --baseline):
  python benchmarks/mini_pilot.py --summary --baseline P-T64 --out results/reference/...
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench.core.config import Cell, TrainConfig, parse_method
from bench.core.episodes import EpisodeSampler, episode_feed, fixed_episodes
from bench.core.model import build_model
from bench.core.precision import resolve_precision
from bench.evaluate.episodic import evaluate
from bench.registry import DATASETS
from bench.stats import mean_ci
from bench.train.runner import TrainState, make_optimizer, train_loop

CPU = torch.device("cpu")
FIELDS = ["arm", "method", "train_way", "train_query", "lr", "augment", "normalize",
          "pretrain_epochs", "pretrain_batch", "pretrain_cpu_seconds", "precision",
          "cpu_seconds", "wall_seconds", "episodes", "last50_train_acc",
          "val_episodes", "val_acc", "val_ci95", "command"]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm")
    parser.add_argument("--method", default="protonet")
    parser.add_argument("--train-way", type=int, default=5)
    parser.add_argument("--train-query", type=int, default=15)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--augment", choices=("on", "off"), default="on")
    parser.add_argument("--normalize", choices=("on", "off"), default="off")
    parser.add_argument("--pretrain-epochs", type=int, default=0)
    parser.add_argument("--pretrain-batch", type=int, default=64)
    parser.add_argument("--cpu-seconds", type=float, default=220)
    parser.add_argument("--val-episodes", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dataset", default="mini-imagenet",
                        help="any registered dataset with a validation split (e.g. cub)")
    parser.add_argument("--data-root", default="../shared/data/miniimagenet")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", default="results/reference/mini-imagenet-cpu")
    parser.add_argument("--summary", action="store_true")
    parser.add_argument("--baseline", default="P-T64")
    return parser.parse_args()


def normalized(model, images: torch.Tensor) -> None:
    """Standardise the model's input per channel with the mean and std of ``images``."""
    sample = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:4000]]
    floats = sample.float() / 255
    mean = floats.mean(dim=(0, 2, 3)).view(1, -1, 1, 1)
    std = floats.std(dim=(0, 2, 3)).view(1, -1, 1, 1)
    embed = model.embed
    model.embed = lambda batch: embed((batch - mean) / std)


def run_arm(args: argparse.Namespace, command: str) -> dict:
    if args.pretrain_epochs and args.normalize == "on":
        raise SystemExit("--pretrain-epochs with --normalize on: pre-training sees raw pixels; "
                         "pilot them in separate arms")
    torch.set_num_threads(args.threads)
    adapter_class = DATASETS.get(args.dataset)
    adapter = adapter_class(adapter_class.Config(), root=Path(args.data_root),
                            cache_dir=args.cache_dir)
    train_set, val_set = adapter.load("train"), adapter.load("val")
    precision = resolve_precision("auto", "cpu")
    cell = Cell(parse_method(args.method), args.dataset, (), 5, 1, 15, args.val_episodes, 0,
                TrainConfig(episodes=0, way=args.train_way, shot=1, query=args.train_query,
                            lr=args.lr, val_every=0, checkpoint_every=0, precision=precision))
    torch.manual_seed(0)
    model = build_model(cell, adapter.channels)
    if args.normalize == "on":
        normalized(model, train_set.images)
    augment = adapter.train_augmentation() if args.augment == "on" else None
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    if args.pretrain_epochs:
        pretrain(model, cell, train_set, args, augment, precision)
    pretrain_cpu = time.process_time() - cpu_start
    optimizer, scheduler = make_optimizer(model, cell)
    sampler = EpisodeSampler(train_set, args.train_way, 1, args.train_query, 0)
    state = TrainState()
    with episode_feed(sampler, train_set.images, 0, False) as feed:
        while time.process_time() - cpu_start < args.cpu_seconds:
            target = replace(cell, train=replace(cell.train, episodes=state.episode + 10))
            train_loop(model, optimizer, scheduler, feed, state, target, CPU, augment=augment)
    cpu_seconds, wall_seconds = time.process_time() - cpu_start, time.perf_counter() - wall_start
    episodes = fixed_episodes(val_set, 5, 1, 15, args.val_episodes, 0)
    accuracies = evaluate(model, val_set, episodes, CPU)
    acc, ci95 = mean_ci(accuracies, "normal")
    out = Path(args.out)
    (out / "pilot").mkdir(parents=True, exist_ok=True)
    np.save(out / "pilot" / f"{args.arm}.npy", accuracies)
    return {"arm": args.arm, "method": args.method, "train_way": args.train_way,
            "train_query": args.train_query, "lr": args.lr, "augment": args.augment,
            "normalize": args.normalize, "pretrain_epochs": args.pretrain_epochs,
            "pretrain_batch": args.pretrain_batch if args.pretrain_epochs else "",
            "pretrain_cpu_seconds": round(pretrain_cpu, 1), "precision": precision,
            "cpu_seconds": round(cpu_seconds, 1), "wall_seconds": round(wall_seconds, 1),
            "episodes": state.episode,
            "last50_train_acc": (round(100 * np.mean([e["train_acc"] for e in state.log[-50:]]), 2)
                                 if state.log else ""),
            "val_episodes": args.val_episodes, "val_acc": round(100 * acc, 2),
            "val_ci95": round(100 * ci95, 2), "command": command}


def pretrain(model, cell: Cell, train_set, args: argparse.Namespace, augment,
             precision: str) -> None:
    """Chen et al.'s supervised pre-training of ``model.backbone`` (a throw-away checkpoint)."""
    import tempfile

    from bench.train.pretrain import identity, train_backbone

    train = replace(cell.train, pretrain_epochs=args.pretrain_epochs,
                    pretrain_batch=args.pretrain_batch, pretrain_lr=args.lr)
    ident = identity(replace(cell, train=train), model.pretrain_classifier,
                     train_set.fingerprint())
    with tempfile.TemporaryDirectory() as scratch:
        payload = train_backbone(ident, train_set, Path(scratch) / "checkpoint.pt", CPU,
                                 augment, lambda: False, args.arm)
    model.backbone.load_state_dict(payload["backbone"])


def append(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def summary(out: Path, baseline: str) -> None:
    """A markdown table of every arm with its paired difference against ``baseline``."""
    import pandas as pd

    rows = pd.read_csv(out / "pilot.csv").drop_duplicates("arm", keep="last")
    base = np.load(out / "pilot" / f"{baseline}.npy")
    print("| arm | method | way/query | lr | aug | norm | pre-training | episodes | CPU s | "
          f"val acc % | Δ vs {baseline} (paired, 95% CI) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows.itertuples():
        diff = np.load(out / "pilot" / f"{row.arm}.npy") - base
        mean, ci = mean_ci(diff, "normal")
        delta = "—" if row.arm == baseline else f"{100 * mean:+.2f} ± {100 * ci:.2f}"
        pre = (f"{row.pretrain_epochs} ep × batch {int(row.pretrain_batch)}, "
               f"{row.pretrain_cpu_seconds:.0f} CPU s" if row.pretrain_epochs else "none")
        print(f"| {row.arm} | {row.method} | {row.train_way}/{row.train_query} | {row.lr:g} | "
              f"{row.augment} | {row.normalize} | {pre} | {row.episodes} | "
              f"{row.cpu_seconds:.0f} | "
              f"{row.val_acc:.2f} ± {row.val_ci95:.2f} | {delta} |")


def main() -> None:
    import shlex
    import sys

    args = arguments()
    if args.summary:
        summary(Path(args.out), args.baseline)
        return
    row = run_arm(args, shlex.join(["python", *sys.argv]))
    append(Path(args.out) / "pilot.csv", row)
    print(row, flush=True)


if __name__ == "__main__":
    main()
