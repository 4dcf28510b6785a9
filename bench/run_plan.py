"""Turns `bench run` options into cells, runs them with rich progress, prints the summary."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import click

from bench.config import Cell, TrainConfig, parse_assignments, parse_methods
from bench.cross_domain import check_cross_cells
from bench.data import data_root
from bench.env import git_state
from bench.errors import BenchError
from bench.grid import RunOptions, run_grid
from bench.interrupt import STOP, Stopped
from bench.precision import resolve_precision
from bench.registry import DATASETS, METHODS

MAX_SEED = 2**32 - 1  # what numpy's and torch's generators accept everywhere


def plan_cells(options: dict) -> tuple[list[Cell], RunOptions]:
    methods = parse_methods(options["methods"])
    DATASETS.get(options["dataset"])
    dataset_params = parse_assignments(",".join(options["dataset_options"]),
                                       f"dataset {options['dataset']}")
    train_shot = options["train_shot"]
    train_ways = per_shot_ways(options["train_way"])
    episodes_by_shot = train_episodes(options["train_episodes"])
    train_shots = (distinct(int_list(train_shot, "--train-shot"), "--train-shot")
                   if train_shot is not None else [None])
    train_queries = distinct(int_list(options["train_query"], "--train-query"), "--train-query")
    train = TrainConfig(
        episodes=0, way=train_ways.get(None), shot=train_shots[0], query=train_queries[0],
        lr=options["lr"], lr_step=options["lr_step"], lr_gamma=options["lr_gamma"],
        val_every=options["val_every"], val_episodes=options["val_episodes"],
        checkpoint_every=options["checkpoint_every"],
        precision=resolve_precision(options["precision"], options["device"]),
        pretrain_epochs=options.get("pretrain_epochs", 0),
        pretrain_batch=options.get("pretrain_batch", 16),
        pretrain_lr=options.get("pretrain_lr", 1e-3),
        plateau_window=options.get("plateau_window", 0),
        plateau_delta=options.get("plateau_delta", 0.5))
    train.validate()
    queries = distinct(int_list(options["query"], "--query"), "--query")
    test_episodes = _count(options["test_episodes"], "--test-episodes")
    if test_episodes < 2:
        raise BenchError("--test-episodes must be at least 2 (a 95% CI needs two episodes); "
                         "write e.g. --test-episodes 600")
    seeds = distinct(int_list(options["seeds"], "--seed", minimum=0, example="0,1,2",
                              maximum=MAX_SEED), "--seed")
    test_seed = test_seed_option(options.get("test_seed"))
    ways = distinct(int_list(options["ways"], "--ways", minimum=2, example="5,20"), "--ways")
    shots = distinct(int_list(options["shots"], "--shots"), "--shots")
    check_per_shot(train_ways, shots)
    tested = test_dataset(options)
    check_pretraining(methods, train)
    cells = [
        Cell(method, options["dataset"], dataset_params, way, shot, query, test_episodes, seed,
             replace(train, episodes=episodes_for(episodes_by_shot, trained_shot or shot)
                     if METHODS.get(method.name).episodic else 0,
                     way=train_ways.get(shot, train.way), shot=trained_shot, query=train_query),
             *(tested or (None, ())), test_seed=None if test_seed == seed else test_seed)
        for seed in seeds for way in ways for shot in shots for query in queries
        for trained_shot in train_shots for train_query in train_queries for method in methods
    ]
    cells[0].dataset_config()  # unknown dataset option → error before anything runs
    cells[0].tested_config()
    run_options = RunOptions(out_dir=out_dir_writable(options["out_dir"]),
                             data_root=data_root(options["data_root"]),
                             cache_dir=options["cache_dir"], download=options["download"],
                             device=check_device(options["device"]), force=options["force"],
                             prefetch=_count(options["prefetch"], "--prefetch", allow_zero=True),
                             ci_method=options["ci_method"],
                             test_data_root=_path(options.get("test_data_root")),
                             models_from=_path(options.get("models_from")),
                             storage=storage_dir(options.get("storage")),
                             tensorboard=tensorboard_dir(options.get("tensorboard")))
    check_cross_cells(cells, run_options)
    return cells, run_options


def distinct(values: list[int], option: str) -> list[int]:
    """The values of a list option, each once; a value given twice is a one-line error (it would
    plan the same cells twice, which a second run then reports as finished elsewhere)."""
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise BenchError(f"{option} lists {', '.join(map(str, repeated))} more than once; list "
                         "each value once")
    return values


def check_per_shot(train_ways: dict, shots: list[int]) -> None:
    """--train-way SHOT:WAY must speak of at least one shot that is run; a preset's list
    narrowed by --shots keeps the ways of the shots left (a shot not listed trains at its test
    way)."""
    listed = sorted(shot for shot in train_ways if shot is not None)
    if listed and not set(listed) & set(shots):
        raise BenchError(f"--train-way gives training ways for {', '.join(map(str, listed))}-shot "
                         f"only, and --shots ({', '.join(map(str, shots))}) tests none of them; "
                         "write --train-way WAY, or SHOT:WAY for a tested shot")


def test_seed_option(text) -> int | None:
    """--test-seed: one seed for the test episodes of every cell (None: each cell's own seed)."""
    if text is None or str(text).strip() == "":
        return None
    values = int_list(text, "--test-seed", minimum=0, example="0", maximum=MAX_SEED)
    if len(values) != 1:
        raise BenchError(f"--test-seed takes one seed (the test episodes every training seed is "
                         f"tested on), got {text!r}; write e.g. --test-seed 0")
    return values[0]


def check_pretraining(methods, train: TrainConfig) -> None:
    """Methods trained only by pre-training (baseline, baselinepp) need --pretrain-epochs; their
    cells get 0 training episodes (they have nothing to learn from episodes)."""
    for method in methods:
        if METHODS.get(method.name).requires_pretraining and not train.pretrain_epochs:
            raise BenchError(f"{method.name} is a pre-trained backbone with a classifier fitted "
                             "per test episode; add --pretrain-epochs N (Chen et al. 2019: 5 on "
                             "Omniglot, 400 on miniImageNet)")


def tensorboard_dir(text: str | None) -> Path | None:
    """--tensorboard DIR: TensorBoard installed, DIR created and writable (None: not asked)."""
    if not text:
        return None
    from bench.tensorboard_log import check_available

    check_available()
    return out_dir_writable(text, "--tensorboard")


def storage_dir(text: str | None) -> Path | None:
    """--storage: created and checked writable like --out (None: models stay under --out)."""
    return out_dir_writable(text, "--storage") if text else None


def test_dataset(options: dict) -> tuple:
    """(test dataset, its parameters) for Cell, or () where the cells test on --dataset."""
    name = options.get("test_dataset")
    if not name:
        if any(options.get(name) for name in ("test_dataset_options", "test_data_root",
                                                  "models_from")):
            raise BenchError("-T, --test-data-root and --models-from apply to --test-dataset; "
                             "add --test-dataset NAME or drop them")
        return ()
    DATASETS.get(name)
    return name, parse_assignments(",".join(options["test_dataset_options"]),
                                   f"test dataset {name}")


def train_episodes(text) -> dict[int | None, int]:
    """--train-episodes: N for every cell ({None: N}), or SHOT:N,... per training shot, as Chen
    et al. train 60,000 episodes at 1-shot and 40,000 at 5-shot (1:60000,5:40000)."""
    text = str(text)
    if ":" not in text:
        return {None: _count(text, "--train-episodes", allow_zero=True)}
    table = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        shot, colon, count = item.partition(":")
        if not colon:
            raise BenchError(f"--train-episodes {text!r} mixes N and SHOT:N; write one count, or "
                             "one per shot, e.g. 1:60000,5:40000")
        key = int_list(shot, "--train-episodes SHOT")[0]
        if key in table:
            raise BenchError(f"--train-episodes gives {key}-shot twice ({text}); give each "
                             "shot one count")
        table[key] = _count(count, "--train-episodes", allow_zero=True)
    return table


def episodes_for(table: dict[int | None, int], shot: int) -> int:
    if None in table:
        return table[None]
    if shot not in table:
        raise BenchError(f"--train-episodes gives no count for {shot}-shot training; add {shot}:N "
                         f"(it has {', '.join(f'{key}:{value}' for key, value in table.items())})")
    return table[shot]


def _path(text: str | None) -> Path | None:
    return Path(text).expanduser() if text else None


def per_shot_ways(text: str | None) -> dict[int | None, int]:
    """--train-way: ``30`` for every cell ({None: 30}), or ``1:30,5:20``, a training way per
    test shot (Snell et al. train 1-shot models 30-way, 5-shot models 20-way); a shot not
    listed trains at its test way."""
    if text is None:
        return {}
    if ":" not in str(text):
        return {None: int_list(text, "--train-way", minimum=2)[0]}
    ways = {}
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        shot, _, way = item.partition(":")
        try:
            if int(shot) in ways:
                raise BenchError(f"--train-way gives {int(shot)}-shot twice ({text}); give each "
                                 "shot one way")
            ways[int(shot)] = int(way)
        except ValueError:
            raise BenchError(f"--train-way {item!r} is not SHOT:WAY; write e.g. --train-way "
                             "1:30,5:20 or --train-way 20") from None
        if ways[int(shot)] < 2:
            raise BenchError(f"--train-way must be at least 2 (a 1-way task is always 100% "
                             f"correct), got {way}")
    return ways


def _count(text: str, option: str, allow_zero: bool = False) -> int:
    try:
        value = int(str(text))
    except ValueError:
        raise BenchError(f"{option} {text!r} is not an integer") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise BenchError(f"{option} must be {'≥ 0' if allow_zero else 'positive'}, got {value}")
    return value


def int_list(text: str, option: str, minimum: int | None = 1, example: str = "1,5",
             maximum: int | None = None) -> list[int]:
    """Comma-separated integers of a CLI option (each in [``minimum``, ``maximum``])."""
    values = []
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        try:
            value = int(item)
        except ValueError:
            raise BenchError(f"{option} {item!r} is not an integer; write e.g. {option} "
                             f"{example}") from None
        if minimum is not None and value < minimum:
            raise BenchError(f"{option} must be {_at_least(minimum)}, got {value}")
        if maximum is not None and value > maximum:
            raise BenchError(f"{option} must be at most {maximum}, got {value}")
        values.append(value)
    if not values:
        raise BenchError(f"{option} is empty; write e.g. {option} {example}")
    return values


def _at_least(minimum: int) -> str:
    if minimum == 1:
        return "positive integers"
    if minimum == 2:
        return "at least 2 (a 1-way task is always 100% correct)"
    return f"integers ≥ {minimum}"


def max_threads() -> int:
    """The most --threads accepted: 4 per logical core (more only slows torch down, or crashes)."""
    return 4 * (os.cpu_count() or 1)


def check_threads(threads: int | None) -> int | None:
    if threads is not None and not 1 <= threads <= max_threads():
        raise BenchError(f"--threads must be between 1 and {max_threads()} (4 × this machine's "
                         f"{os.cpu_count()} logical cores), got {threads}")
    return threads


def check_device(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` (what the runner supports), else a one-line error."""
    import re

    device = str(text).strip()
    if device == "cpu" or re.fullmatch(r"cuda(:\d+)?", device):
        return device
    raise BenchError(f"--device {text!r} is not supported; use cpu, cuda or cuda:N")


def out_dir_writable(path: str, option: str = "--out") -> Path:
    if not str(path).strip():
        raise BenchError(f"{option} is empty; pass {option} DIR (a folder for the results)")
    out = Path(path).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        # A probe of its own: two runs sharing one --out must not unlink each other's probe.
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as error:
        raise BenchError(f"{option} directory {out} is not writable ({error.strerror}); "
                         f"pass {option} DIR with a writable folder") from None
    return out


def execute(cells: list[Cell], options: RunOptions, threads: int | None = None,
            executor=None) -> None:
    """Run the grid with progress, print the summary; Ctrl-C exits 130, SIGTERM 143 (bench.interrupt).
    ``executor``: bench.ray_executor.RayExecutor, or None for the local loop."""
    import torch

    from bench import results
    from bench.progress import announce_cache_builds, live_progress, progress_for

    options = replace(options, code_state=git_state())  # the rows name the commit started from
    if threads:
        torch.set_num_threads(check_threads(threads))
    if executor is None:  # with Ray the workers hold the GPUs, the driver may have none
        check_cuda(options.device)
    results.finished_rows(options.out_dir)  # a damaged results file fails before any work
    wanted = {cell.cell_id for cell in cells}
    STOP.summary = lambda: (f"{len(wanted & results.finished_cell_ids(options.out_dir))} of "
                            f"{len(wanted)} cells finished, in {results.results_path(options.out_dir)}")
    start = time.perf_counter()
    try:
        with live_progress() as bars, announce_cache_builds(bars):
            if executor is not None:
                executor.bars = bars
            outcome = run_grid(cells, options, lambda cell: progress_for(bars, cell),
                               should_stop=STOP, executor=executor)
    except Stopped as stopped:
        STOP.exit(str(stopped))
    print_summary(cells, outcome, options, time.perf_counter() - start)
    if outcome.failed:
        raise SystemExit(1)


def check_cuda(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BenchError(f"--device {device} but torch sees no CUDA device; use --device cpu")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise BenchError(f"--device {device} but torch sees {torch.cuda.device_count()} CUDA "
                             f"device(s); use --device cuda:0")
        torch.backends.cudnn.benchmark = True  # training episodes all have one shape


def print_summary(cells, outcome, options: RunOptions, seconds: float) -> None:
    """The finished cells' table(s), then what ran, what was skipped and what failed."""
    from rich.console import Console

    from bench import results

    console = Console()
    if results.results_path(options.out_dir).exists():
        frame = results.load(options.out_dir)
        for table in summary_tables(frame[frame["cell_id"].isin({c.cell_id for c in cells})]):
            console.print(table)
    elsewhere = (f", {len(outcome.finished_elsewhere)} finished by another run meanwhile"
                 if outcome.finished_elsewhere else "")
    failed = f", {len(outcome.failed)} failed" if outcome.failed else ""
    click.echo(f"{len(outcome.rows)} cells run, {len(outcome.skipped)} already finished "
               f"(skipped; --force redoes them){elsewhere}{failed}, in {seconds:.0f} s. "
               f"Results: {results.results_path(options.out_dir)}")
    for cell, message in outcome.failed:
        click.echo(f"failed: {cell.describe()}: {message}")


def training_seconds(rows) -> float:
    """The training time of a method's rows, each training counted once: cells that share a
    model (a 1-shot model tested at 5-shot too) carry the same training's seconds."""
    keys = [column for column in ("seed", "train_way", "train_shot", "train_query",
                                  "train_episodes", "train_seconds") if column in rows]
    return float(rows.drop_duplicates(keys)["train_seconds"].sum())


def summary_tables(frame) -> list:
    """One rich table per (training dataset, tested dataset, way): methods × shots; several
    seeds: one line per seed."""
    from rich.markup import escape
    from rich.table import Table

    tables = []
    frame = frame.assign(train_dataset=frame["train_dataset"].fillna(frame["dataset"])
                         if "train_dataset" in frame else frame["dataset"])
    for (trained, tested, way), group in frame.groupby(["train_dataset", "dataset", "way"],
                                                       sort=True):
        dataset = tested if trained == tested else f"{trained} → {tested}"
        shots = sorted(group["shot"].unique())
        seeds = sorted(group["seed"].unique())
        several = len(seeds) > 1
        caption = ("one line per training run (seed); each ± covers that run's test episodes: "
                   "`bench report` gives the mean and CI over runs" if several else
                   "one training run: the ± covers its test episodes")
        table = Table(title=f"{dataset}, {way}-way: accuracy % ± 95% CI "
                            f"({int(group['test_episodes'].iloc[0])} test episodes)",
                      caption=caption)
        table.add_column("method", overflow="fold")
        if several:
            table.add_column("seed", justify="right", no_wrap=True)
        for shot in shots:
            table.add_column(f"{shot}-shot", justify="right", no_wrap=True)
        table.add_column("train time", justify="right", no_wrap=True)
        for method, rows in group.groupby("method", sort=False):
            texts = []
            for shot in shots:
                hit = rows[rows["shot"] == shot]
                texts.append("\n".join(" / ".join(f"{r.acc:.2f} ± {r.ci95:.2f}" for r in
                                                   hit[hit["seed"] == seed].itertuples()) or "-"
                                        for seed in seeds))
            labels = ["\n".join(map(str, seeds))] if several else []
            table.add_row(escape(str(method)), *labels, *texts,
                          f"{training_seconds(rows):.0f} s", end_section=several)
        tables.append(table)
    return tables
