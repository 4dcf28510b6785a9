"""Cached evaluation at 84×84 on miniImageNet's test split, through `bench perf`'s eval machinery.

Writes OUT/eval.csv (the columns of `bench perf`'s eval.csv, machine-stamped) for the given
methods at 5-way 1- and 5-shot 15-query: per-episode re-embedding on the first PER_EPISODE
episodes, cached evaluation of COUNT episodes (untrained models: the rates, not accuracies,
are the point; accuracies are compared episode by episode between the two modes).

Usage: python benchmarks/eval84.py --data-root ../shared/data/miniimagenet --out results/perf/mini84
       [--methods protonet,cosine] [--shots 1,5] [--count 10000] [--per-episode 30] [--threads 2]
"""

import argparse
import shlex
import sys
from pathlib import Path

import pandas as pd
import torch

from bench.core.config import parse_methods
from bench.core.env import keep_freed_memory
from bench.perf import suite as perf
from bench.perf.evaluation import EvalPlan, eval_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--methods", default="protonet,cosine")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--shots", default="1,5")
    parser.add_argument("--per-episode", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    keep_freed_memory()  # as `bench` does (the first measurement, eac33d9, ran without it)
    torch.set_num_threads(args.threads)
    data = perf.load_data("mini-imagenet", args.data_root, None, print)
    plan = EvalPlan(shots=tuple(int(shot) for shot in args.shots.split(",")),
                    counts=(args.count,), per_episode=args.per_episode, train_episodes=0)
    rows = eval_rows(parse_methods(args.methods), data.train, data.test, data.channels,
                     data.dataset, plan, torch.device("cpu"), print)
    frame = perf.ordered(pd.DataFrame(rows), perf.COLUMNS["eval"])
    stamp = perf.machine_stamp("cpu", shlex.join(["python", *sys.argv]))
    path, = perf.write_results({"eval": frame}, Path(args.out), stamp)
    print(frame[["method", "shot", "mode", "episodes", "episodes_per_s", "seconds",
                 "acc_matches"]].to_string())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
