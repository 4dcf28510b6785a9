"""Cross-domain cells: a model trained on one dataset, tested on another dataset's test classes.

Chen et al. 2019's miniImageNet → CUB scenario (`bench run --test-dataset cub ...`). The model is
the one an in-domain run stored in DIR/models/<training_id>.pt: the training id leaves the test
dataset out, so a cross-domain cell finds the model of the cell trained with the same options, as
a resumed run does. It is never trained here (a cross-domain command that silently trained for
hours on a typo would be worse than an error): a missing model is a one-line error naming the
command that makes it.

The two datasets must agree on channels and image side. A model trained on grey images cannot
read RGB ones (Omniglot → CUB is refused; no conversion is offered, since neither grey-to-RGB
replication nor RGB-to-luma is a protocol anyone publishes), and a side mismatch is refused with
the `-T size=N` that fixes it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

from bench import checkpoint, results
from bench.config import Cell
from bench.data import DatasetAdapter
from bench.episodes import check_episode_shape, fixed_episodes
from bench.errors import BenchError
from bench.grid import CellResult, RunOptions, load_adapter, make_row
from bench.precision import PRECISIONS
from bench.registry import DATASETS
from bench.runner import Progress, build_model, evaluate


def check_cross_cells(cells: list[Cell], options: RunOptions) -> None:
    """Before anything runs: the datasets fit each other and every model to test is stored."""
    cross = [cell for cell in cells if cell.test_dataset]
    for cell in cross:
        check_compatible(cell)
    finished = set() if options.force else results.finished_cell_ids(options.out_dir)
    missing = [cell for cell in cross
               if cell.cell_id not in finished and not stored_model_path(cell, options).exists()]
    if missing:
        cell, more = missing[0], f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        folder = stored_model_path(cell, options).parent
        other = stored_precision(cell, options)
        fix = (f"a model trained in {other} is stored there: add --precision {other}" if other
               else "run the same command without --test-dataset first, or pass --models-from "
                    "DIR of the run that trained it")
        raise BenchError(f"no trained model for {cell.describe()}{more} in {folder} (training id "
                         f"{cell.training_id}); {fix}")


def stored_precision(cell: Cell, options: RunOptions) -> str | None:
    """The other training precision whose model of this cell is stored, if one is: a model
    trained under `--precision auto` on another machine may be bf16 where auto means fp32 here."""
    for precision in PRECISIONS:
        other = replace(cell, train=replace(cell.train, precision=precision))
        if precision != cell.train.precision and stored_model_path(other, options).exists():
            return precision
    return None


def check_compatible(cell: Cell) -> None:
    trained, tested = DATASETS.get(cell.dataset), DATASETS.get(cell.test_dataset)
    if trained.channels != tested.channels:
        raise BenchError(f"{cell.dataset} has {trained.channels}-channel images and "
                         f"{cell.test_dataset} {tested.channels}-channel ones: a model trained on "
                         f"one cannot test on the other (no channel conversion is offered); pick "
                         f"a test dataset with {trained.channels}-channel images")
    train_side = image_side(trained, cell.dataset_config())
    test_side = image_side(tested, cell.tested_config())
    if train_side != test_side:
        raise BenchError(f"the model is trained on {train_side}×{train_side} {cell.dataset} "
                         f"images but {cell.test_dataset} gives {test_side}×{test_side}; add "
                         f"-T size={train_side}")


def check_no_shared_classes(cell: Cell, test_set, options: RunOptions) -> None:
    """One dataset under two options (cub's closer-look vs frn) may share classes: FRN's test
    classes are all closer-look training classes. A model tested on classes it trained on is not
    few-shot, so that is refused."""
    trained_on = set(load_adapter(cell, options).load("train").class_names)
    shared = sorted(trained_on & set(test_set.class_names))
    if shared:
        raise BenchError(f"{len(shared)} of the {test_set.n_classes} test classes of "
                         f"{test_set.name} are training classes of the model ({shared[0]}, ...); "
                         "test on a split whose test classes the training split lacks")


def image_side(adapter_class: type[DatasetAdapter], config) -> int:
    return int(getattr(config, "size", adapter_class.image_size))


def stored_model_path(cell: Cell, options: RunOptions) -> Path:
    return checkpoint.model_path(options.models_from or options.storage_dir, cell)


def test_adapter(cell: Cell, options: RunOptions) -> DatasetAdapter:
    cls = DATASETS.get(cell.test_dataset)
    return cls(cell.tested_config(), options.test_data_root or options.data_root,
               options.cache_dir, options.download)


def evaluate_cross_cell(cell: Cell, adapters: dict, options: RunOptions,
                        progress: Progress) -> CellResult:
    """Evaluate the stored model on the test dataset's test split (the caller writes the
    result, as for any cell)."""
    key = ("test", cell.test_dataset, cell.test_dataset_params)
    if key not in adapters:
        adapters[key] = test_adapter(cell, options)
    test_set = adapters[key].load("test")
    if cell.test_dataset == cell.dataset:
        check_no_shared_classes(cell, test_set, options)
    check_episode_shape(test_set, cell.way, cell.shot, cell.query)
    episodes = fixed_episodes(test_set, cell.way, cell.shot, cell.query, cell.test_episodes,
                              cell.episode_seed)
    device = torch.device(options.device)
    torch.manual_seed(cell.seed)
    path = stored_model_path(cell, options)
    if not path.exists():  # deleted since check_cross_cells
        raise BenchError(f"the trained model {path} of {cell.describe()} is gone; train it again")
    model = build_model(cell, DATASETS.get(cell.dataset).channels,
                        **checkpoint.stored_data_shape(path, cell)).to(device)
    trained = checkpoint.load_model(path, cell, model)
    start = time.perf_counter()
    accuracies = evaluate(model, test_set, episodes, device, progress=progress)
    row = make_row(cell, accuracies, episodes.hash, trained, time.perf_counter() - start, options,
                   adapters[key].split_deviation())
    return CellResult(cell, row, accuracies, trained["log"])
