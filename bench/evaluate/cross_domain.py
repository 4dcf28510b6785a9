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

import torch

from bench.core import models
from bench.core.cells import CellResult, RunOptions, adapter_for, stored_model_path
from bench.core.config import Cell
from bench.core.episodes import check_episode_shape
from bench.core.model import Progress, build_model
from bench.errors import BenchError
from bench.evaluate.cell import cell_episodes, measure
from bench.registry import DATASETS


def check_no_shared_classes(cell: Cell, test_set, options: RunOptions, adapters: dict) -> None:
    """One dataset under two options (cub's closer-look vs frn) may share classes: FRN's test
    classes are all closer-look training classes. A model tested on classes it trained on is not
    few-shot, so that is refused."""
    trained_on = set(adapter_for(cell, options, adapters).load("train").class_names)
    shared = sorted(trained_on & set(test_set.class_names))
    if shared:
        raise BenchError(f"{len(shared)} of the {test_set.n_classes} test classes of "
                         f"{test_set.name} are training classes of the model ({shared[0]}, ...); "
                         "test on a split whose test classes the training split lacks")


def evaluate_cross_cell(cell: Cell, adapters: dict, options: RunOptions,
                        progress: Progress) -> CellResult:
    """Evaluate the stored model on the test dataset's test split (the caller writes the
    result, as for any cell)."""
    adapter = adapter_for(cell, options, adapters, tested=True)
    test_set = adapter.load("test")
    if cell.test_dataset == cell.dataset:
        check_no_shared_classes(cell, test_set, options, adapters)
    check_episode_shape(test_set, cell.way, cell.shot, cell.query)
    episodes = cell_episodes(cell, test_set)
    torch.manual_seed(cell.seed)
    path = stored_model_path(cell, options)
    if not path.exists():  # deleted since check_cross_cells
        raise BenchError(f"the trained model {path} of {cell.describe()} is gone; train it again")
    model = build_model(cell, DATASETS.get(cell.dataset).channels,
                        **models.stored_data_shape(path, cell)).to(torch.device(options.device))
    trained = models.load_model(path, cell, model)
    return measure(cell, model, trained, test_set, episodes, options, progress,
                   adapter.split_deviation())
