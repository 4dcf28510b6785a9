"""Where the budget rule (--plateau-window W --plateau-delta D) would have stopped the training
runs of existing results folders, from their logs: a pilot of the rule on learning curves already
measured, without training anything.

    .venv/bin/python benchmarks/budget_rule_pilot.py results/reference/mini-imagenet-cpu \
        results/reference/cub-cpu --window 1000 --delta 0.5

For each row with a training log: the validation curve, the episode at which the rule fires (or
"still learning" when it never does before the cap; "not by E" when the logged run ended at E,
before its cap, and the replayed rule had not fired by then), and the best validation accuracy at
that point against the best of the whole run, and how many of the steps before the stop ran at
a decayed learning rate: a rule that stops a method before its first decay never lets it train at
the lower rate that another method, still learning, reaches. The rule replayed is the runner's
(`bench.train.runner.plateaued`), with each run's own schedule and cap (its row's config):
it fires only once a full window has passed at the schedule's last learning rate before the cap.
``--any-rate`` replays the rule as it was before 2026-12-08, when it could fire at any rate (how
mini-fair's protonet cells stopped at episode 2000, where the rate halves).

``--val-every N`` asks what sparser validation would have done (a cost option of the fair-answer
issue: a TRM 5-shot validation of 200 episodes costs about as much as 60 training steps): only the
logged validations at multiples of N are kept (N a multiple of the run's own interval), and each
row adds the validations run and the episode whose weights would have been kept, against the
logged schedule. The kept weights' *test* accuracy is not known unless they are the same weights,
and where the logged run stopped before the sparser schedule would have, what it would have done
next is unknown (the row says so).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from bench.core.config import TrainConfig  # noqa: E402
from bench.results import load, log_path  # noqa: E402
from bench.train.runner import plateaued  # noqa: E402


def stopping(log: list[dict], rule) -> tuple[int | None, list[tuple[int, float]]]:
    """(the episode where the rule fires or None, the validations up to there)."""
    validations = []
    for index, entry in enumerate(log):
        if entry["val_acc"] == entry["val_acc"]:
            validations.append((entry["episode"], entry["val_acc"]))
            if plateaued(log[:index + 1], rule):
                return entry["episode"], validations
    return None, validations


def decayed_steps(log: list[dict], until: int) -> int:
    """Training steps up to episode ``until`` that ran at a learning rate below the run's first.
    The log records the rate after each step's scheduler step, so step e used entry e − 1's."""
    if not log or "lr" not in log[0]:
        return 0
    top = max(entry["lr"] for entry in log)
    return sum(1 for entry in log if entry["episode"] < until and entry["lr"] < top)


def sparser(log: list[dict], every: int, cap: int) -> list[dict]:
    """The log as if validation had run only at multiples of ``every`` episodes and at the cap
    (as the runner validates); a multiple the log passed without a validation is an error."""
    validated = {entry["episode"] for entry in log if entry["val_acc"] == entry["val_acc"]}
    last = max((entry["episode"] for entry in log), default=0)
    missing = [episode for episode in range(every, last + 1, every) if episode not in validated]
    if missing:
        raise SystemExit(f"budget_rule_pilot: --val-every {every} needs a logged validation at "
                         f"episode {missing[0]}, which the log lacks; pass a multiple of the "
                         "run's own validation interval")
    return [entry for entry in log if entry["episode"] in validated
            and (entry["episode"] % every == 0 or entry["episode"] == cap)]


def best(validations: list[tuple[int, float]]) -> tuple[int, float]:
    """(episode, accuracy) of the best validation; the earliest of equals, as training keeps."""
    return max(validations, key=lambda item: (item[1], -item[0]))


def stop_text(stop: int | None, log: list[dict], cap: int) -> str:
    if stop:
        return str(stop)
    ended = log[-1]["episode"]
    return "still learning" if ended >= cap else f"not by {ended} (the log ends; unknown after)"


def train_settings(row) -> dict:
    """The row's training settings, as its ``config`` column records them."""
    return json.loads(row["config"]).get("train", {})


def row_rule(row, args) -> SimpleNamespace:
    """The rule with the run's own schedule and cap (the default schedule where the row's config
    lacks one); without them (``--any-rate``) it may fire at any rate."""
    rule = SimpleNamespace(plateau_window=args.window, plateau_delta=args.delta)
    if args.any_rate:
        return rule
    train, defaults = train_settings(row), TrainConfig()
    return SimpleNamespace(**vars(rule), episodes=int(row["train_episodes"]),
                           lr_step=train.get("lr_step", defaults.lr_step),
                           lr_gamma=train.get("lr_gamma", defaults.lr_gamma))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+")
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--delta", type=float, default=0.5)
    parser.add_argument("--val-every", type=int, default=0,
                        help="also show the rule with validation only every N episodes")
    parser.add_argument("--any-rate", action="store_true",
                        help="the rule before 2026-12-08, which could stop before the final rate")
    args = parser.parse_args()
    # a retrained cell keeps its cell_id, so the same id can sit in two folders
    frame = load(args.results).drop_duplicates(["source_dir", "cell_id"])
    seen = set()
    print(f"rule: stop when the best validation accuracy rose by ≤ {args.delta:g} points over "
          f"the last {args.window} episodes"
          + (", at any learning rate (before 2026-12-08)" if args.any_rate else
             ", all of them at the schedule's last rate before the cap"))
    header = ("| folder | method | train shot | precision | validation curve (episode: %) | "
              "stops at | best there / best of run | steps at a decayed lr before the stop |")
    rule_line = "| --- | --- | ---: | --- | --- | ---: | ---: | ---: |"
    if args.val_every:
        header += (f" every {args.val_every}: stops at | validations run (logged → every "
                   f"{args.val_every}) | kept weights: episode (validation %), logged → every "
                   f"{args.val_every} |")
        rule_line += " ---: | ---: | --- |"
    print(header)
    print(rule_line)
    for _, row in frame.iterrows():
        path = log_path(Path(row["source_dir"]), row["cell_id"])
        key = (row["source_dir"], row["method"], row["seed"], row["train_dataset"],  # a training
               json.dumps(train_settings(row), sort_keys=True))
        if not path.exists() or key in seen:
            continue
        seen.add(key)
        log = pd.read_csv(path).to_dict("records")
        rule = row_rule(row, args)
        stop, seen_validations = stopping(log, rule)
        validations = [(e["episode"], e["val_acc"]) for e in log if e["val_acc"] == e["val_acc"]]
        if not validations:
            continue
        best_all = max(acc for _, acc in validations)
        best_stop = best(seen_validations)[1]
        curve = ", ".join(f"{episode}: {100 * acc:.1f}" for episode, acc in validations)
        line = (f"| {Path(row['source_dir']).name} | {row['method']} | {row['train_shot']} | "
                f"{row['precision']} | {curve} | "
                f"{stop_text(stop, log, int(row['train_episodes']))} | "
                f"{100 * best_stop:.1f} / {100 * best_all:.1f} | "
                f"{decayed_steps(log, stop or log[-1]['episode'])} |")
        if args.val_every:
            cap = int(row["train_episodes"])
            sparse_stop, sparse_seen = stopping(sparser(log, args.val_every, cap), rule)
            ended = log[-1]["episode"]
            if not sparse_seen:
                line += " no validation at that interval | | |"
            else:
                kept, sparse_kept = best(seen_validations), best(sparse_seen)
                if sparse_stop:
                    sparse_text = str(sparse_stop)
                elif ended < cap:  # the logged run stopped early: what followed is unknown
                    sparse_text = f"not by {ended} (the log ends; unknown after)"
                else:
                    sparse_text = "still learning"
                line += (f" {sparse_text} | "
                         f"{len(seen_validations)} → {len(sparse_seen)} | {kept[0]} "
                         f"({100 * kept[1]:.1f}) → {sparse_kept[0]} ({100 * sparse_kept[1]:.1f})"
                         f"{'' if kept[0] == sparse_kept[0] else ', other weights'} |")
        print(line)


if __name__ == "__main__":
    main()
