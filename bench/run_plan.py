"""Turns `bench run` options into cells, runs them with rich progress, prints the summary."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import click

from bench.config import Cell, TrainConfig, parse_assignments, parse_methods
from bench.data import data_root
from bench.errors import BenchError
from bench.grid import Interrupted, RunOptions, run_grid
from bench.precision import resolve_precision
from bench.registry import DATASETS


def plan_cells(options: dict) -> tuple[list[Cell], RunOptions]:
    methods = parse_methods(options["methods"])
    DATASETS.get(options["dataset"])
    dataset_params = parse_assignments(",".join(options["dataset_options"]),
                                       f"dataset {options['dataset']}")
    train_shot = options["train_shot"]
    train_ways = per_shot_ways(options["train_way"])
    train = TrainConfig(
        episodes=_count(options["train_episodes"], "--train-episodes", allow_zero=True),
        way=train_ways.get(None),
        shot=int_list(train_shot, "--train-shot")[0] if train_shot is not None else None,
        query=int_list(options["train_query"], "--train-query")[0],
        lr=options["lr"], lr_step=options["lr_step"], lr_gamma=options["lr_gamma"],
        val_every=options["val_every"], val_episodes=options["val_episodes"],
        checkpoint_every=options["checkpoint_every"],
        precision=resolve_precision(options["precision"], options["device"]))
    train.validate()
    query = int_list(options["query"], "--query")[0]
    test_episodes = _count(options["test_episodes"], "--test-episodes")
    seeds = int_list(options["seeds"], "--seed", minimum=None, example="0,1,2")
    ways, shots = int_list(options["ways"], "--ways"), int_list(options["shots"], "--shots")
    cells = [
        Cell(method, options["dataset"], dataset_params, way, shot, query, test_episodes, seed,
             replace(train, way=train_ways.get(shot, train.way)))
        for seed in seeds for way in ways for shot in shots for method in methods
    ]
    cells[0].dataset_config()  # unknown dataset option → error before anything runs
    run_options = RunOptions(out_dir=out_dir_writable(options["out_dir"]),
                             data_root=data_root(options["data_root"]),
                             cache_dir=options["cache_dir"], download=options["download"],
                             device=options["device"], force=options["force"],
                             prefetch=_count(options["prefetch"], "--prefetch", allow_zero=True),
                             ci_method=options["ci_method"])
    return cells, run_options


def per_shot_ways(text: str | None) -> dict[int | None, int]:
    """--train-way: ``30`` for every cell ({None: 30}), or ``1:30,5:20``, a training way per
    test shot (Snell et al. train 1-shot models 30-way, 5-shot models 20-way); a shot not
    listed trains at its test way."""
    if text is None:
        return {}
    if ":" not in str(text):
        return {None: int_list(text, "--train-way")[0]}
    ways = {}
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        shot, _, way = item.partition(":")
        try:
            ways[int(shot)] = int(way)
        except ValueError:
            raise BenchError(f"--train-way {item!r} is not SHOT:WAY; write e.g. --train-way "
                             "1:30,5:20 or --train-way 20") from None
        if ways[int(shot)] < 1:
            raise BenchError(f"--train-way must be positive integers, got {way}")
    return ways


def _count(text: str, option: str, allow_zero: bool = False) -> int:
    try:
        value = int(str(text))
    except ValueError:
        raise BenchError(f"{option} {text!r} is not an integer") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise BenchError(f"{option} must be {'≥ 0' if allow_zero else 'positive'}, got {value}")
    return value


def int_list(text: str, option: str, minimum: int | None = 1, example: str = "1,5") -> list[int]:
    """Comma-separated integers of a CLI option (each ≥ ``minimum`` unless it is None)."""
    values = []
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        try:
            value = int(item)
        except ValueError:
            raise BenchError(f"{option} {item!r} is not an integer; write e.g. {option} "
                             f"{example}") from None
        if minimum is not None and value < minimum:
            raise BenchError(f"{option} must be positive integers, got {value}")
        values.append(value)
    if not values:
        raise BenchError(f"{option} is empty; write e.g. {option} {example}")
    return values


def out_dir_writable(path: str) -> Path:
    out = Path(path).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise BenchError(f"output directory {out} is not writable ({error.strerror}); "
                         "pass --out DIR with a writable folder") from None
    return out


def execute(cells: list[Cell], options: RunOptions, stop, threads: int | None = None) -> None:
    import torch

    from bench.progress import live_progress, progress_for

    if threads:
        torch.set_num_threads(threads)
    if options.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BenchError(f"--device {options.device} but torch sees no CUDA device; "
                             "use --device cpu")
        torch.backends.cudnn.benchmark = True  # training episodes all have one shape
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
