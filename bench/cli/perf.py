"""`bench perf`: measure evaluation, training and TRM-head throughput; print and write CSVs."""

from __future__ import annotations

import math
import shlex
import sys

import click


@click.command("perf")
@click.option("--quick", is_flag=True,
              help="Fewer episodes and repeats (same files, same columns): ≤ 5 min on 2 cores.")
@click.option("--out", "out_dir", default="runs/perf", show_default=True, type=click.Path(),
              help="Folder for eval.csv, train.csv, trm_head.csv, train84.csv, train28.csv and "
                   "checks.csv (the committed reference files are in results/perf).")
@click.option("--dataset", default=None,
              help="Dataset to evaluate and train on [default: omniglot when a data root is set "
                   "and holds it, else glyphs].")
@click.option("--data-root", default=None, help="Dataset root [env FEWSHOT_BENCH_DATA].")
@click.option("--cache-dir", default=None,
              help="Preprocessed-data cache [env FEWSHOT_BENCH_CACHE, ~/.cache/fewshot-bench].")
@click.option("--download", is_flag=True, help="Download the dataset if it is missing.")
@click.option("--methods", default=None,
              help="Methods whose evaluation is timed; NAME(key=value,...) sets parameters "
                   "[default: every registered method; with --quick: protonet,cosine,trm].")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@click.option("--threads", default=None, type=int, help="torch CPU threads [default: torch's].")
def perf_command(quick: bool, out_dir: str, dataset: str | None, data_root: str | None,
                 cache_dir: str | None, download: bool, methods: str | None, device: str,
                 threads: int | None) -> None:
    """Time cached vs per-episode evaluation, the training loop vs a plain one, and the TRM head."""
    import torch
    from rich.console import Console

    from bench.core.config import parse_methods
    from bench.execute.local import check_cuda
    from bench.perf.suite import (
        FULL,
        QUICK,
        QUICK_METHODS,
        checks,
        load_data,
        machine_stamp,
        run_perf,
        write_results,
    )
    from bench.plan.options import check_device, check_threads, out_dir_writable
    from bench.registry import DATASETS, METHODS

    specs = parse_methods(methods or (QUICK_METHODS if quick else ",".join(METHODS.names())))
    if dataset is not None:
        DATASETS.get(dataset)  # an unknown name fails before anything is created or run
    check_cuda(check_device(device))
    if check_threads(threads) is not None:
        torch.set_num_threads(threads)
    out = out_dir_writable(out_dir)
    console = Console()

    def log(message: str) -> None:
        console.log(message)

    settings = QUICK if quick else FULL
    data = load_data(dataset, data_root, cache_dir, log, download)
    frames = run_perf(data, settings, specs, torch.device(device), torch.get_num_threads(), log)
    frames["checks"] = checks(frames, settings.head.max_attn_mib)
    stamp = machine_stamp(device, shlex.join(["bench", *sys.argv[1:]]))
    paths = write_results(frames, out, stamp)
    print_tables(console, frames, stamp)
    console.print(f"Wrote {', '.join(str(path) for path in paths)}")
    loaded = frames["eval"].get("loaded")
    if loaded is not None and loaded.any():
        console.print(f"[bold]warning[/bold]: the 1-minute load average reached "
                      f"{frames['eval']['load_avg'].max():.1f} while timing, above the "
                      f"{torch.get_num_threads()} threads: other work shared the cores, so these "
                      "rates are not a speed figure (column `loaded`); rerun on a quiet machine")


def print_tables(console, frames: dict, stamp: dict) -> None:
    """The measurements as rich tables, with speed-ups and the acceptance checks."""
    from rich.table import Table

    console.print(f"[bold]{stamp['cpu']}[/bold], {stamp['cores']} cores, {stamp['threads']} "
                  f"threads, torch {stamp['torch']}, {stamp['device']}, commit {stamp['commit']}"
                  f"{' (dirty)' if stamp['dirty'] else ''}")
    if "matmul_gflops" in frames["eval"]:
        console.print(f"fp32 2048² matrix product: {frames['eval']['matmul_gflops'].iloc[0]:.0f} "
                      "GFLOP/s")
    console.print(frame_table(Table(title="Evaluation (cached includes the one-time embedding)"),
                              frames["eval"], ["method", "shot", "mode", "episodes",
                                               "episodes_per_s", "seconds", "acc",
                                               "acc_matches"]))
    console.print(frame_table(Table(title="Training loop"), frames["train"],
                              ["loop", "method", "way", "shot", "query", "episodes_per_s",
                               "min_episodes_per_s", "max_episodes_per_s"]))
    console.print(frame_table(Table(title="TRM head (eval: no grad; train: forward + backward)"),
                              frames["trm_head"],
                              ["way", "shot", "query", "hw", "normalize", "phase", "ms",
                               "peak_mib", "bound_mib",
                               "query_chunk", "repeats", "status"]))
    if "train84" in frames:
        train84 = frames["train84"]
        console.print(f"2048² matrix product: fp32 {train84['matmul_fp32_gflops'].iloc[0]:.0f}, "
                      f"bf16 {train84['matmul_bf16_gflops'].iloc[0]:.0f} GFLOP/s; bf16 native: "
                      f"{bool(train84['bf16_native'].iloc[0])}")
        console.print(frame_table(Table(title="Training step, 5-way 15-query 84×84 RGB"),
                                  train84, ["method", "shot", "precision", "ms_per_step",
                                            "gflop_per_step", "gflops", "matmul_gflops",
                                            "fraction_of_matmul"]))
    if "train28" in frames:
        console.print(frame_table(Table(title="Training step, 5-way 15-query 28×28 grey"),
                                  frames["train28"], ["method", "shot", "precision",
                                                      "ms_per_step", "gflop_per_step", "gflops",
                                                      "fraction_of_matmul"]))
    checks = frames["checks"]
    if "flop_speedup" in checks:
        speedups = checks[checks["method"].notna()].rename(columns={"value": "speedup"})
        caption = ("equal-rate: the speed-up if every FLOP took the same time; GF/s: GFLOP/s "
                   "measured; needed: the head GF/s the required speed-up needs (docs/perf.md)")
        console.print(frame_table(Table(title="Speed-ups in FLOP", caption=caption),
                                  speedups.assign(shot=speedups["shot"].astype(int)),
                                  ["method", "shot", "speedup", "flop_speedup", "embed_gflops",
                                   "head_gflops", "head_gflops_needed"]))
    console.print(frame_table(Table(title="Checks"), checks,
                              ["check", "value", "required", "passed"]))


HEADERS = {"episodes_per_s": "ep/s", "seconds": "s", "acc_matches": "equal",
           "min_episodes_per_s": "min ep/s", "max_episodes_per_s": "max ep/s",
           "peak_mib": "peak MiB", "bound_mib": "bound", "query_chunk": "chunk",
           "repeats": "calls", "speedup": "speed-up", "flop_speedup": "equal-rate",
           "embed_gflops": "embed GF/s", "head_gflops": "head GF/s",
           "head_gflops_needed": "needed", "ms_per_step": "ms/step", "gflop_per_step": "GFLOP",
           "gflops": "GF/s", "matmul_gflops": "matmul GF/s", "fraction_of_matmul": "÷ matmul"}


TEXT_COLUMNS = ("method", "check", "mode", "loop", "status", "normalize", "phase")


def frame_table(table, frame, columns: list[str]):
    """``frame[columns]`` as ``table``'s rows, fitting 80 columns: no vertical rules, numbers
    never cut (they do not wrap; the check descriptions and method labels wrap instead). Columns
    that files of an older schema lack are left out."""
    from rich import box
    from rich.markup import escape

    columns = [column for column in columns if column in frame]

    table.box, table.pad_edge = box.SIMPLE_HEAD, False
    for column in columns:
        text = column in TEXT_COLUMNS
        table.add_column(HEADERS.get(column, column), justify="left" if text else "right",
                         no_wrap=not text, overflow="fold")
    for row in frame[columns].itertuples(index=False):
        table.add_row(*(escape(format_value(value)) for value in row))
    return table


def format_value(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
