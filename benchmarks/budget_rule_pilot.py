"""Where the budget rule (--plateau-window W --plateau-delta D) would have stopped the training
runs of existing results folders, from their logs: a pilot of the rule on learning curves already
measured, without training anything.

    .venv/bin/python benchmarks/budget_rule_pilot.py results/reference/mini-imagenet-cpu \
        results/reference/cub-cpu --window 1000 --delta 0.5

For each row with a training log: the validation curve, the episode at which the rule fires (or
"still learning" when it never does before the log ends), and the best validation accuracy at
that point against the best of the whole run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from bench.results import load, log_path  # noqa: E402
from bench.train.runner import plateaued  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+")
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--delta", type=float, default=0.5)
    args = parser.parse_args()
    rule = SimpleNamespace(plateau_window=args.window, plateau_delta=args.delta)
    frame = load(args.results).drop_duplicates("cell_id")
    seen = set()
    print(f"rule: stop when the best validation accuracy rose by ≤ {args.delta:g} points over "
          f"the last {args.window} episodes")
    print("| folder | method | train shot | validation curve (episode: %) | stops at | best "
          "there / best of run |")
    print("| --- | --- | ---: | --- | ---: | ---: |")
    for _, row in frame.iterrows():
        path = log_path(Path(row["source_dir"]), row["cell_id"])
        key = (row["source_dir"], row["method"], row["train_shot"], row["seed"])
        if not path.exists() or key in seen:
            continue
        seen.add(key)
        log = pd.read_csv(path).to_dict("records")
        validations = [(e["episode"], e["val_acc"]) for e in log if e["val_acc"] == e["val_acc"]]
        if not validations:
            continue
        stop = next((entry["episode"] for index, entry in enumerate(log)
                     if plateaued(log[:index + 1], rule)), None)
        best_all = max(acc for _, acc in validations)
        best_stop = max(acc for episode, acc in validations if stop is None or episode <= stop)
        curve = ", ".join(f"{episode}: {100 * acc:.1f}" for episode, acc in validations)
        print(f"| {Path(row['source_dir']).name} | {row['method']} | {row['train_shot']} | "
              f"{curve} | {stop if stop else 'still learning'} | {100 * best_stop:.1f} / "
              f"{100 * best_all:.1f} |")


if __name__ == "__main__":
    main()
