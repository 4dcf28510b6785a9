"""Turns `bench run` options into cells, runs them with rich progress, prints the summary."""

from __future__ import annotations

import sys
import time

import click

from bench.cli_run import int_list, out_dir_writable
from bench.config import Cell, TrainConfig, parse_assignments, parse_methods
from bench.data import data_root
from bench.errors import BenchError
from bench.grid import Interrupted, RunOptions, run_grid
from bench.registry import DATASETS


def plan_cells(options: dict) -> tuple[list[Cell], RunOptions]:
    methods = parse_methods(options["methods"])
    DATASETS.get(options["dataset"])
    dataset_params = parse_assignments(",".join(options["dataset_options"]),
                                       f"dataset {options['dataset']}")
    optional = {name: int_list(options[name], f"--{name.replace('_', '-')}")[0]
                for name in ("train_way", "train_shot") if options[name] is not None}
    train = TrainConfig(
        episodes=_count(options["train_episodes"], "--train-episodes", allow_zero=True),
        way=optional.get("train_way"), shot=optional.get("train_shot"),
        query=int_list(options["train_query"], "--train-query")[0],
        lr=options["lr"], lr_step=options["lr_step"], lr_gamma=options["lr_gamma"],
        val_every=options["val_every"], val_episodes=options["val_episodes"],
        checkpoint_every=options["checkpoint_every"])
    train.validate()
    cells = [
        Cell(method, options["dataset"], dataset_params, way, shot,
             int_list(options["query"], "--query")[0],
             _count(options["test_episodes"], "--test-episodes"), seed, train)
        for seed in _seeds(options["seeds"])
        for way in int_list(options["ways"], "--ways")
        for shot in int_list(options["shots"], "--shots")
        for method in methods
    ]
    cells[0].dataset_config()  # unknown dataset option → error before anything runs
    run_options = RunOptions(out_dir=out_dir_writable(options["out_dir"]),
                             data_root=data_root(options["data_root"]),
                             cache_dir=options["cache_dir"], download=options["download"],
                             device=options["device"], force=options["force"],
                             ci_method=options["ci_method"])
    return cells, run_options


def _count(text: str, option: str, allow_zero: bool = False) -> int:
    try:
        value = int(str(text))
    except ValueError:
        raise BenchError(f"{option} {text!r} is not an integer") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise BenchError(f"{option} must be {'≥ 0' if allow_zero else 'positive'}, got {value}")
    return value


def _seeds(text: str) -> list[int]:
    seeds = []
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        try:
            seeds.append(int(item))
        except ValueError:
            raise BenchError(f"--seed {item!r} is not an integer") from None
    if not seeds:
        raise BenchError("--seed is empty; write e.g. --seed 0 or --seed 0,1,2")
    return seeds


def execute(cells: list[Cell], options: RunOptions, stop, threads: int | None = None) -> None:
    import torch

    from bench.progress import live_progress, progress_for

    if threads:
        torch.set_num_threads(threads)
    if options.device.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"--device {options.device} but torch sees no CUDA device; use --device cpu")
    start = time.perf_counter()
    with live_progress() as bars:
        try:
            outcome = run_grid(cells, options, lambda cell: progress_for(bars, cell),
                               should_stop=stop)
        except Interrupted as stopped:
            click.echo(f"stopped during {stopped}: checkpoint saved in {options.out_dir}/"
                       "checkpoints; rerun the same command to resume", err=True)
            sys.exit(130)
    print_summary(cells, outcome, options, time.perf_counter() - start)
    if outcome.failed:
        sys.exit(1)


def print_summary(cells, outcome, options: RunOptions, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    from bench import results

    console = Console()
    frame = results.load(options.out_dir)
    wanted = {cell.cell_id for cell in cells}
    frame = frame[frame["cell_id"].isin(wanted)]
    for (dataset, way), group in frame.groupby(["dataset", "way"], sort=True):
        shots = sorted(group["shot"].unique())
        table = Table(title=f"{dataset}, {way}-way: accuracy % ± 95% CI "
                            f"({int(group['test_episodes'].iloc[0])} test episodes)")
        table.add_column("method")
        for shot in shots:
            table.add_column(f"{shot}-shot", justify="right")
        table.add_column("train time", justify="right")
        for method, rows in group.groupby("method", sort=False):
            cells_text = []
            for shot in shots:
                hit = rows[rows["shot"] == shot]
                cells_text.append("" if hit.empty else " / ".join(
                    f"{r.acc:.2f} ± {r.ci95:.2f}" for r in hit.itertuples()))
            table.add_row(method, *cells_text, f"{rows['train_seconds'].sum():.0f} s")
        console.print(table)
    console.print(f"{len(outcome.rows)} cells run, {len(outcome.skipped)} already finished "
                  f"(skipped; --force redoes them), in {seconds:.0f} s. "
                  f"Results: {results.results_path(options.out_dir)}")
    for cell, message in outcome.failed:
        click.echo(f"failed: {cell.describe()}: {message}")
