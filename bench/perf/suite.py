"""`bench perf`: evaluation, training-loop and TRM-head throughput, written as stamped CSVs.

Three measurements (bench/perf_eval.py, perf_train.py, perf_head.py) and the issue's pass/fail
checks on them. Every CSV starts with the columns the issue specifies, then detail columns, then
the machine stamp (host, CPU, cores, threads, torch, device, commit, dirty tree, the command and
the time), so each file says where, on what and by which command it was measured, and pandas
reads it as is. docs/perf.md describes every column.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from bench.core.env import git_state, machine
from bench.data import ImageSet, data_root
from bench.errors import BenchError
from bench.perf.evaluation import EvalPlan, eval_rows
from bench.perf.train_loop import TrainShape, train_rows
from bench.perf.train_step import Train84Plan, train84_checks, train84_rows
from bench.perf.trm_head import head_cases, head_rows
from bench.registry import DATASETS

SCHEMA_VERSION = 1
COLUMNS = {
    "eval": ["method", "dataset", "mode", "episodes", "episodes_per_s", "acc"],
    "train": ["loop", "method", "episodes_per_s"],
    "trm_head": ["way", "shot", "query", "hw", "normalize", "phase", "ms", "peak_mib"],
    "train84": ["method", "shot", "precision", "image_size", "ms_per_step", "gflop_per_step",
                "gflops", "matmul_gflops"],
}
COLUMNS["train28"] = COLUMNS["train84"]
# Omniglot's shape (28×28 grey), every episodic method: a training-step row per method
TRAIN28 = Train84Plan(size=28, channels=1)


@dataclass(frozen=True)
class HeadGrid:
    ways: tuple[int, ...] = (5, 20)
    shots: tuple[int, ...] = (1, 5)
    queries: tuple[int, ...] = (15,)
    hws: tuple[int, ...] = (49, 441)
    max_repeats: int = 5
    flop_budget: float = 3e11  # repeats per case fit in this many FLOP (the largest runs once)
    max_attn_mib: int = 2048


@dataclass(frozen=True)
class PerfSettings:
    eval: EvalPlan = field(default_factory=EvalPlan)
    train: TrainShape = field(default_factory=TrainShape)
    head: HeadGrid = field(default_factory=HeadGrid)
    train84: Train84Plan = field(default_factory=Train84Plan)
    train28: Train84Plan = TRAIN28


FULL = PerfSettings()
# ≤ 5 minutes on 2 cores: one shot, 2,000 instead of 10,000 cached episodes, untrained models
# (equal accuracies are what is checked), shorter training blocks, single head calls when large,
# 84×84 training steps at the precision `bench run` would use only, 3 timed steps each.
_QUICK84 = Train84Plan(methods=("protonet", "cosine", "trm"), precisions=("auto",), warmup=2,
                       steps=3)
QUICK = PerfSettings(
    eval=EvalPlan(shots=(1,), counts=(600, 2000), per_episode=30, train_episodes=0),
    train=TrainShape(block=10, blocks=4),
    head=HeadGrid(max_repeats=3, flop_budget=1e11),
    train84=_QUICK84,
    train28=replace(_QUICK84, size=TRAIN28.size, channels=TRAIN28.channels),
)
QUICK_METHODS = "protonet,cosine,trm"  # --quick's default --methods


@dataclass
class PerfData:
    dataset: str
    train: ImageSet
    test: ImageSet
    channels: int


def load_data(dataset: str | None, root: str | None, cache_dir: str | None,
              log: Callable[[str], None] = lambda message: None,
              download: bool = False) -> PerfData:
    """The train and test splits of ``dataset``; by default Omniglot when a data root is set
    (--data-root or $FEWSHOT_BENCH_DATA) and loads, else the embedded glyphs."""
    resolved_root = data_root(root)
    if dataset is None:
        if resolved_root is not None:
            try:
                return load_data("omniglot", root, cache_dir, log, download)
            except BenchError as error:
                log(f"omniglot unavailable ({error}); using glyphs")
        return load_data("glyphs", root, cache_dir, log)
    adapter_class = DATASETS.get(dataset)
    adapter = adapter_class(adapter_class.Config(), resolved_root, cache_dir, download)
    log(f"loading {dataset}")
    return PerfData(dataset, adapter.load("train"), adapter.load("test"), adapter_class.channels)


def run_perf(data: PerfData, settings: PerfSettings, specs, device, threads: int,
             log: Callable[[str], None] = lambda message: None) -> dict[str, pd.DataFrame]:
    """The five measurements as frames ``eval``, ``train``, ``trm_head``, ``train84``,
    ``train28`` (not yet stamped)."""
    grid = settings.head
    cases = head_cases(grid.ways, grid.shots, grid.queries, grid.hws, grid.max_repeats,
                       grid.flop_budget, grid.max_attn_mib, threads, str(device))
    frames = {
        "eval": eval_rows(specs, data.train, data.test, data.channels, data.dataset,
                          settings.eval, device, log),
        "train": train_rows(data.train, data.channels, settings.train, device, log),
        "trm_head": head_rows(cases, log),
        "train84": train84_rows(settings.train84, device, log),
        "train28": train84_rows(settings.train28, device, log),
    }
    return {name: ordered(pd.DataFrame(rows), COLUMNS[name]) for name, rows in frames.items()}


def ordered(frame: pd.DataFrame, first: list[str]) -> pd.DataFrame:
    return frame[first + [column for column in frame.columns if column not in first]]


def machine_stamp(device: str, command: str) -> dict:
    commit, dirty = git_state()
    return {**machine(device), "commit": commit, "dirty": dirty, "command": command,
            "timestamp": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "schema_version": SCHEMA_VERSION}


def write_results(frames: dict[str, pd.DataFrame], out_dir: Path, stamp: dict) -> list[Path]:
    """OUT/<name>.csv for every frame, each row followed by the machine stamp's columns."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in frames.items():
        path = out_dir / f"{name}.csv"
        frame.assign(**stamp).to_csv(path, index=False)
        paths.append(path)
    return paths


def checks(frames: dict[str, pd.DataFrame], max_attn_mib: int) -> pd.DataFrame:
    """The issue's acceptance checks, one row each: ``check, value, required, passed``."""
    rows = [*speedup_checks(frames["eval"])]
    matches = frames["eval"]["acc_matches"].astype(bool)
    rows.append({"check": "equal accuracies on equal episodes, every row",
                 "value": f"{int(matches.sum())}/{len(matches)} rows", "required": "all",
                 "passed": bool(matches.all())})
    rates = frames["train"].set_index("loop")["episodes_per_s"]
    ratio = rates["harness"] / rates["plain"]
    rows.append({"check": "training episodes/s, harness / plain", "value": round(ratio, 3),
                 "required": "≥ 0.9", "passed": bool(ratio >= 0.9)})
    rows += head_checks(frames["trm_head"], max_attn_mib)
    if "train84" in frames:
        rows += train84_checks(frames["train84"])
    return pd.DataFrame(rows)


DUAL_OVER_ROW_REQUIRED = 1.3


def head_checks(head: pd.DataFrame, max_attn_mib: int) -> list[dict]:
    """Peak memory of the default (dual) head within its bound, in both phases, and the dual
    normalisation's cost against the row softmax's, for every measured (shot, HW, phase)."""
    rows = []
    limits = (((5, 5, "eval"), f"≤ {max_attn_mib} MiB"), ((5, 5, "train"), f"≤ {max_attn_mib} MiB"),
              ((20, 5, "eval"), "no OOM"))
    for (way, shot, phase), required in limits:
        case = head[(head["way"] == way) & (head["shot"] == shot) & (head["hw"] == 441)
                    & (head["phase"] == phase) & (head["normalize"] == "dual")]
        if case.empty:
            continue
        row = case.iloc[0]
        passed = row["status"] == "ok" and (way == 20 or bool(row["within_bound"]))
        rows.append({"check": f"trm head peak MiB, {way}-way {shot}-shot HW=441, {phase}",
                     "value": round(float(row["peak_mib"]), 1), "required": required,
                     "passed": passed})
    times = head[head["way"] == 5].pivot_table(index=["shot", "hw", "phase"],
                                               columns="normalize", values="ms")
    if {"dual", "row"} <= set(times.columns):
        for (shot, hw, phase), pair in times.iterrows():
            ratio = pair["dual"] / pair["row"]
            rows.append({"check": f"trm head dual / row time, 5-way {shot}-shot HW={hw}, {phase}",
                         "value": round(float(ratio), 2),
                         "required": f"≤ {DUAL_OVER_ROW_REQUIRED}",
                         "passed": bool(ratio <= DUAL_OVER_ROW_REQUIRED)})
    return rows


SPEEDUP_REQUIRED = {"protonet": 15.0, "trm": 5.0}


def speedup_checks(frame: pd.DataFrame):
    """Cached (largest count) / per-episode episodes/s per method and shot; the issue's bounds
    apply at 10,000 episodes, smaller counts (--quick) are reported without a verdict. Each row
    also accounts for the speed-up in FLOP (:func:`flop_account`)."""
    for (method, shot), group in frame.groupby(["method", "shot"], sort=False):
        per_episode = group[group["mode"] == "per-episode"].iloc[0]
        cached = group[group["mode"] == "cached"].sort_values("episodes").iloc[-1]
        speedup = cached["episodes_per_s"] / per_episode["episodes_per_s"]
        bound = SPEEDUP_REQUIRED.get(method)
        applies = bound is not None and cached["episodes"] >= 10_000
        yield {"check": f"speed-up cached/per-episode, {method} {shot}-shot, "
                        f"{int(cached['episodes'])} episodes",
               "method": method, "shot": int(shot), "value": round(speedup, 2),
               "required": f"≥ {bound:g}" if applies else "",
               "passed": bool(speedup >= bound) if applies else None,
               **flop_account(per_episode, cached, bound),
               "matmul_gflops": cached.get("matmul_gflops")}


def flop_account(per_episode, cached, required: float | None) -> dict:
    """What the speed-up of ``cached`` over ``per_episode`` is made of, in FLOP.

    Per episode, per-episode evaluation runs E embedding GFLOP and H head GFLOP; cached
    evaluation runs H plus its share u of the one-time embedding (``embedded_images`` over the
    images its episodes hold). From the two measured times per episode, T_p = E/r_e + H/r_h and
    T_c = H/r_h + u·E/r_e, follow the embedding's and the head's GFLOP/s, r_e and r_h.

    - ``flop_speedup``: (E + H) / (H + u·E), the speed-up if every FLOP took the same time;
    - ``embed_gflops``, ``head_gflops``: r_e and r_h as measured;
    - ``head_gflops_needed``: the r_h at which, with r_e as measured, the speed-up would reach
      ``required`` (inf when no head speed can).

    Head FLOP are what the counter sees (matrix products); a head without any (ProtoNet's
    distances) gets only ``embed_gflops``.
    """
    embed, head = cached["embed_gflop"], cached["head_gflop"]
    images = cached["episodes"] * cached["way"] * (cached["shot"] + cached["query"])
    share = cached["embedded_images"] / images
    t_per_episode, t_cached = 1 / per_episode["episodes_per_s"], 1 / cached["episodes_per_s"]
    account = {"flop_speedup": None, "embed_gflops": None, "head_gflops": None,
               "head_gflops_needed": None}
    if t_per_episode <= t_cached:
        return account
    embed_rate = embed * (1 - share) / (t_per_episode - t_cached)
    account["embed_gflops"] = round(embed_rate, 1)
    head_time = t_cached - share * embed / embed_rate
    if not head > 0 or head_time <= 0:
        return account
    account["flop_speedup"] = round((embed + head) / (head + share * embed), 2)
    account["head_gflops"] = round(head / head_time, 1)
    if required is not None:
        room = embed * (1 - required * share)
        account["head_gflops_needed"] = (round(head * (required - 1) * embed_rate / room, 1)
                                         if room > 0 else math.inf)
    return account
