"""The grid as jobs, one per training: what the local loop and the Ray executor both run.

A job is the cells that share one trained model (same ``training_id``: e.g. the 5- and 20-way
tests of one training), in the grid's order; its first cell trains (or resumes from its
checkpoint, or loads the stored model), the others load the model it stored. ``run_job`` is a
pure function of the job and the run's options: it reads data, writes only models, checkpoints
and locks under the storage directory, and yields one CellResult per cell, which the driver
writes. Executors differ only in where ``run_job`` runs (bench.execute.driver.run_grid: here,
one job after the other; bench.execute.ray.executor: one Ray task per job) and in how its
results come back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench.core.cells import CellResult, RunOptions, adapter_for, check_cell
from bench.core.config import Cell
from bench.core.model import NumericalFault, Progress
from bench.data import DatasetAdapter
from bench.evaluate.cell import cell_episodes, measure
from bench.interrupt import STOP
from bench.train.cell import trained_model


@dataclass(frozen=True)
class Job:
    """The unfinished cells of one training; ``retrain``: train afresh (``--force``)."""

    cells: tuple[Cell, ...]
    retrain: bool = False

    @property
    def training_id(self) -> str:
        return self.cells[0].training_id

    @property
    def trains(self) -> bool:
        """False for cross-domain cells: they test a stored model and never train."""
        return not self.cells[0].test_dataset

    def describe(self) -> str:
        more = f" (+{len(self.cells) - 1} cells)" if len(self.cells) > 1 else ""
        return self.cells[0].describe() + more


@dataclass(frozen=True)
class Preparation:
    """A step that several jobs wait for, such as a pre-training shared by every training of one
    backbone, dataset and seed: ``function(*args)`` does it and stores what it makes under the
    storage directory, and returns at once when that is already there (so calling it again,
    from the next job or a retried task, costs nothing). ``key`` names it: jobs whose
    preparations have one key share one. ``function`` is a module-level function (Ray workers
    import it by name)."""

    key: str
    label: str
    function: Callable
    args: tuple = ()
    takes_context: bool = False  # ``function`` accepts ``adapters`` and ``progress``

    def run(self, adapters: dict | None = None, progress: Progress | None = None) -> None:
        """``adapters``: the caller's dataset cache (the local loop; a Ray task has none);
        ``progress``: where the step reports (pre-training: epochs and images/s). Both are
        passed on where ``function`` takes them."""
        if self.takes_context:
            self.function(*self.args, adapters=adapters, progress=progress)
        else:
            self.function(*self.args)


def preparations(job: Job, options: RunOptions) -> tuple[Preparation, ...]:
    """What must be done before ``job`` trains, in order: its supervised pre-training, if any
    (bench.train.pretrain; shared by every training of one backbone, classifier, dataset and seed).
    The local loop runs them inline at the start of ``run_job``; the Ray executor runs each
    distinct one as a task the job's task waits for."""
    from bench.train import pretrain

    cell = job.cells[0]
    if not job.trains or not cell.train.pretrain_epochs:
        return ()
    return (Preparation(pretrain.preparation_key(cell), f"the pre-training of {cell.describe()}",
                        pretrain.prepare, (cell, options, job.retrain), takes_context=True),)


def plan_jobs(cells: list[Cell], finished: set[str], force: bool) -> tuple[list[Job], list[Cell]]:
    """(jobs in order of their first cell, cells skipped as finished). Cross-domain cells of one
    stored model form a job of their own, apart from the cells that train it."""
    groups: dict[tuple[str, bool], list[Cell]] = {}
    skipped = []
    for cell in cells:
        if cell.cell_id in finished and not force:
            skipped.append(cell)
            continue
        groups.setdefault((cell.training_id, bool(cell.test_dataset)), []).append(cell)
    jobs = [Job(tuple(group), retrain=force and not cross)
            for (_, cross), group in groups.items()]
    return jobs, skipped


def run_job(job: Job, options: RunOptions, adapters: dict,
            progress_for: Callable[[Cell], Progress] | None = None,
            should_stop: Callable[[], bool] = lambda: False,
            is_finished: Callable[[Cell], bool] = lambda cell: False) -> Iterator[CellResult]:
    """Each cell of ``job`` trained or loaded, evaluated, and yielded as a CellResult.

    ``adapters`` caches datasets across jobs of one process; ``is_finished(cell)`` says a
    concurrent run wrote the cell meanwhile (its evaluation is then skipped)."""
    if job.trains:
        for preparation in preparations(job, options):
            with STOP.phase(f"preparing {preparation.label}"):
                preparation.run(adapters=adapters, progress=progress_for(job.cells[0])
                                if progress_for else None)
    for index, cell in enumerate(job.cells):
        STOP.check()
        progress = progress_for(cell) if progress_for else Progress()
        if cell.test_dataset:  # evaluates a stored model on another dataset, never trains
            from bench.evaluate.cross_domain import evaluate_cross_cell

            yield evaluate_cross_cell(cell, adapters, options, progress)
            continue
        try:
            yield evaluate_cell(cell, adapter_for(cell, options, adapters), options, progress,
                                should_stop, retrain=job.retrain and index == 0,
                                is_finished=is_finished)
        except NumericalFault as fault:
            message, *log = fault.args
            yield CellResult(cell, failure=message, failure_log=log[0] if log else [])


def evaluate_cell(cell: Cell, adapter: DatasetAdapter, options: RunOptions, progress: Progress,
                  should_stop=lambda: False, retrain: bool = False,
                  is_finished=lambda cell: False) -> CellResult:
    """Train (or load the model trained for an earlier cell), evaluate; writes nothing but the
    model and checkpoints under the storage directory (the caller writes the results)."""
    with STOP.phase(f"preparing {cell.describe()}"):
        check_cell(cell, adapter)
        test_set = adapter.load("test")
        episodes = cell_episodes(cell, test_set)
    model, trained = trained_model(cell, adapter, options, progress, should_stop, retrain)
    if is_finished(cell):
        return CellResult(cell)  # finished by a concurrent run meanwhile
    return measure(cell, model, trained, test_set, episodes, options, progress,
                   adapter.split_deviation())
