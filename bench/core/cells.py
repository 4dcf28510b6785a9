"""What every layer shares about one cell's run: the run's options, a finished cell's result and
its results row, the dataset adapter a cell reads, and the shape checks made before training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench import results
from bench.core import models
from bench.core.config import Cell
from bench.core.env import git_state, machine
from bench.core.episodes import check_episode_shape
from bench.data import DatasetAdapter
from bench.interrupt import Stopped
from bench.registry import DATASETS
from bench.stats import mean_ci


class Interrupted(Stopped):
    """Training stopped on a signal after saving a checkpoint."""


@dataclass
class CellResult:
    """What a finished cell sends back to the process that writes results: its row (whose
    ``config`` is the resolved configuration), per-episode accuracies and training log; or the
    numerical failure of its training; or neither (a concurrent run finished it meanwhile)."""

    cell: Cell
    row: dict | None = None
    accuracies: np.ndarray | None = None
    log: list[dict] = field(default_factory=list)
    failure: str | None = None
    failure_log: list[dict] = field(default_factory=list)

    @property
    def finished_elsewhere(self) -> bool:
        return self.row is None and self.failure is None


@dataclass
class RunOptions:
    out_dir: Path
    data_root: Path | None = None
    cache_dir: Path | None = None
    download: bool = False
    device: str = "cpu"
    force: bool = False
    prefetch: int = 0  # training episodes sampled ahead in a worker process (0: inline)
    ci_method: str = "normal"
    test_data_root: Path | None = None  # root of --test-dataset (cross-domain cells)
    models_from: Path | None = None  # DIR whose models/ cross-domain cells read (default storage)
    storage: Path | None = None  # models/, checkpoints/, locks/ (default out_dir; for workers)
    # (commit, dirty) of the checkout when the run started, written into every row (workers
    # too): a run of hours executes the code it imported then, whatever HEAD is when it ends
    code_state: tuple[str, bool] | None = None
    tensorboard: Path | None = None  # --tensorboard: each finished cell's log as event files

    @property
    def storage_dir(self) -> Path:
        return self.storage or self.out_dir


def dataset_adapter(dataset: str, config, root: Path | None, options: RunOptions
                    ) -> DatasetAdapter:
    """A new adapter of the registered ``dataset`` with its ``config``, reading ``root`` (the
    cache folder and the download permission come from ``options``)."""
    return DATASETS.get(dataset)(config, root, options.cache_dir, options.download)


def adapter_for(cell: Cell, options: RunOptions, adapters: dict, tested: bool = False
                ) -> DatasetAdapter:
    """The adapter of the dataset the cell trains on, or (``tested``) of the one it is tested on,
    loaded once per process: ``adapters`` is the cache, keyed by dataset, options and root. A
    cross-domain cell's test dataset reads --test-data-root, else --data-root."""
    if tested and cell.test_dataset:
        root = options.test_data_root or options.data_root
        key = (cell.test_dataset, cell.test_dataset_params, root)
        if key not in adapters:
            adapters[key] = dataset_adapter(cell.test_dataset, cell.tested_config(), root, options)
    else:
        key = (cell.dataset, cell.dataset_params, options.data_root)
        if key not in adapters:
            adapters[key] = dataset_adapter(cell.dataset, cell.dataset_config(),
                                            options.data_root, options)
    return adapters[key]


def load_adapter(cell: Cell, options: RunOptions) -> DatasetAdapter:
    """A new adapter of the dataset the cell trains on (no cache)."""
    return adapter_for(cell, options, {})


def check_cell(cell: Cell, adapter: DatasetAdapter) -> None:
    """Bad shapes fail before any training, with a one-line error."""
    check_episode_shape(adapter.load("test"), cell.way, cell.shot, cell.query)
    check_episode_shape(adapter.load("train"), cell.train_way, cell.train_shot, cell.train.query,
                        options=("--train-way", "--train-shot", "--train-query"))


def make_row(cell: Cell, accuracies: np.ndarray, episodes_hash: str, trained: dict,
             eval_seconds: float, options: RunOptions, deviation: str = "") -> dict:
    """The results row; ``deviation``: how the tested dataset's splits differ from its standard
    one (``DatasetAdapter.split_deviation``), which the split label then says."""
    acc, ci95 = mean_ci(accuracies, options.ci_method)
    commit, dirty = options.code_state or git_state()
    resolved = cell.resolved()
    return {
        "method": cell.method.label, "dataset": cell.tested_dataset,
        "split": split_label(cell) + (f" [{deviation}]" if deviation else ""),
        "train_dataset": cell.dataset,
        "backbone": resolved["method_params"].get("backbone", ""),
        "way": cell.way, "shot": cell.shot, "query": cell.query,
        "test_episodes": cell.test_episodes, "acc": 100 * acc, "ci95": 100 * ci95,
        "ci_method": options.ci_method, "seed": cell.seed, "test_seed": cell.episode_seed,
        "train_episodes": cell.train.episodes, "train_way": cell.train_way,
        "train_shot": cell.train_shot, "train_query": cell.train.query,
        "precision": cell.train.precision,
        "best_episode": trained["best_episode"],
        "train_seconds": round(trained["train_seconds"], 2), "eval_seconds": round(eval_seconds, 2),
        "episodes_hash": episodes_hash, "train_data": trained.get("train_data", ""),
        "commit": commit, "dirty": dirty,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **{key: value for key, value in machine(options.device).items() if key != "cores"},
        "cell_id": cell.cell_id, "schema_version": results.SCHEMA_VERSION,
        "config": resolved,
    }


def split_label(cell: Cell) -> str:
    """The tested dataset's split option (or "standard"), plus any other option set off its
    default."""
    params = asdict(cell.tested_config())
    defaults = asdict(DATASETS.get(cell.tested_dataset).Config())
    label = str(params.pop("split", "standard"))
    changed = [f"{key}={value}" for key, value in params.items() if value != defaults.get(key)]
    return label + (f" ({','.join(changed)})" if changed else "")


def stored_model_path(cell: Cell, options: RunOptions) -> Path:
    return models.model_path(options.models_from or options.storage_dir, cell)


MAX_RETRIES = 3  # Ray's default for tasks whose worker dies; said here so the messages can cite it


@dataclass(frozen=True)
class RaySettings:
    address: str | None = None  # None: RAY_ADDRESS if set, else a new local Ray
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    max_retries: int = MAX_RETRIES

    @property
    def threads(self) -> int:
        """torch threads of each task: its CPUs (at least one)."""
        return max(1, int(self.cpus_per_task))
