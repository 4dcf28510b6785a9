"""`bench run --executor ray`: one Ray task per training (bench.execute.jobs.Job), results
written here.

Every task runs ``bench.execute.jobs.run_job`` (what the local loop runs) in a Ray worker with
torch's threads set to its CPUs, and returns its cells' CellResults; this process, the driver,
writes each through the locked, atomic path of bench.execute.driver.record as its task's results
arrive. Models, checkpoints and training locks live under ``--storage`` (every worker must reach
it: a shared filesystem on a cluster). A worker that dies is retried by Ray (``max_retries``) and
its task resumes from the training's last checkpoint; a stopped driver leaves finished cells
written and unfinished trainings checkpointed, so rerunning the command resumes; a stop while
Ray starts ends what the start had launched.

``import ray`` happens only here, only for this executor.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench.core.cells import CellResult, RaySettings, RunOptions
from bench.errors import BenchError
from bench.execute.jobs import Job, Preparation, preparations, run_job
from bench.interrupt import STOP, Stopped

CONNECT_SECONDS = 5.0
_WORKER_ADAPTERS: dict = {}  # datasets loaded by this worker process, reused by its next tasks


@dataclass(frozen=True)
class TaskError:
    """A BenchError raised in a task, sent back as a value so the driver prints one line."""

    message: str


def import_ray():
    try:
        import ray
    except ImportError:
        raise BenchError("--executor ray needs Ray, which is not installed; run `make setup` "
                         "(it installs ray==2.60.0) or pip install ray==2.60.0") from None
    return ray


def check_reachable(address: str) -> None:
    """A HOST:PORT that nothing answers on is an error within seconds (Ray itself would retry
    for minutes)."""
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        raise BenchError(f"--ray-address {address!r} is not HOST:PORT (e.g. 10.0.0.1:6379, the "
                         "address `ray start --head` prints), auto or local")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise BenchError(f"no Ray cluster answers at {address} ({error.strerror or error}); "
                         "start one with `ray start --head` or fix --ray-address") from None


def connect(settings: RaySettings):
    """The ray module, initialised: joins --ray-address (or RAY_ADDRESS), else starts a local
    Ray on this machine's cores. Our SIGTERM handler is kept (ray.init installs its own)."""
    ray = import_ray()
    address = settings.address or os.environ.get("RAY_ADDRESS") or "local"
    if address not in ("local", "auto"):
        check_reachable(address)
    handler = signal.getsignal(signal.SIGTERM)
    before = descendants(os.getpid())
    try:
        ray.init(address=address, include_dashboard=False, logging_level="ERROR",
                 configure_logging=True)
    except ConnectionError as error:
        abandon_start(ray, before)
        raise BenchError(f"cannot join Ray at {address}: {str(error).splitlines()[0]}; start "
                         "one with `ray start --head` or pass --ray-address HOST:PORT") from None
    except BaseException:  # a stop (Ctrl-C, SIGTERM) while Ray starts: leave nothing running
        abandon_start(ray, before)
        raise
    finally:
        signal.signal(signal.SIGTERM, handler)
    return ray


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, their children, ...), read from /proc; empty
    where /proc is unavailable."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = set(), [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            if child not in found:
                found.add(child)
                queue.append(child)
    return found


def abandon_start(ray, before: set[int]) -> None:
    """After a start of Ray that did not finish: shut down what it started, then end every
    process it left below this one (a raylet's agents would otherwise outlive us under PID 1).
    The whole tree is listed before anything is ended, so no child is orphaned first."""
    started = descendants(os.getpid()) - before
    try:
        ray.shutdown()
    except Exception:  # noqa: BLE001 - a half-started Ray may fail to shut down; we clean up
        pass
    for pid in sorted(started):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass  # already gone


def check_resources(ray, settings: RaySettings) -> None:
    """A task must fit on one node, else Ray would keep it pending for ever."""
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    for name, option, wanted in (("CPU", "--cpus-per-task", settings.cpus_per_task),
                                 ("GPU", "--gpus-per-task", settings.gpus_per_task)):
        largest = max((node.get(name, 0.0) for node in nodes), default=0.0)
        if wanted > largest:
            raise BenchError(f"{option} {wanted:g} but no node of the Ray cluster has more than "
                             f"{largest:g} {name}s; lower {option} or add bigger nodes")


def run_job_task(job: Job, options: RunOptions, threads: int, board, key: int,
                 *prepared) -> list[CellResult] | TaskError:
    """The body of one Ray task (in a worker process): ``run_job`` with ``threads`` torch
    threads; ``prepared`` are the results of the preparations it waits for (unused: they are
    stored under the storage directory)."""
    import torch

    from bench.core.env import keep_freed_memory
    from bench.execute.ray.progress import BoardProgress

    keep_freed_memory()
    torch.set_num_threads(threads)
    if options.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    failed = [value for value in prepared if isinstance(value, TaskError)]
    if failed:
        return failed[0]
    progress = BoardProgress(board, key)
    progress.started()
    try:
        return list(run_job(job, options, _WORKER_ADAPTERS, progress.for_cell))
    except BenchError as error:
        return TaskError(str(error))


def run_preparation_task(preparation: Preparation, threads: int,
                         board=None) -> str | TaskError:
    """The body of a preparation's Ray task; the jobs that need it get its key once it is done
    (or its error, which they return instead of training). It reports its progress (a
    pre-training's epochs and images/s) to ``board`` under ``preparation_board_key``."""
    import torch

    from bench.execute.ray.progress import BoardProgress, preparation_board_key

    torch.set_num_threads(threads)
    progress = None
    if board is not None:
        progress = BoardProgress(board, preparation_board_key(preparation.key))
        progress.label = preparation.label
        progress.started()
    try:
        preparation.run(progress=progress)
    except BenchError as error:
        return TaskError(str(error))
    finally:
        if progress is not None:
            progress.prepared()
    return preparation.key


class RayExecutor:
    """Runs bench.execute.driver.run_grid's jobs as Ray tasks (``executor=`` of run_grid)."""

    def __init__(self, settings: RaySettings, bars=None):
        self.settings = settings
        self.bars = bars

    def run(self, jobs: list[Job], options: RunOptions,
            record: Callable[[CellResult], None]) -> None:
        if not jobs:
            return
        options = absolute_paths(options)
        self.storage = options.storage_dir
        ray = connect(self.settings)
        pending: dict = {}
        try:
            check_resources(ray, self.settings)
            pending = self.submit(ray, jobs, options)
            self.drain(ray, pending, options, record)
        finally:
            close(ray, pending)

    def submit(self, ray, jobs: list[Job], options: RunOptions) -> dict:
        """{ObjectRef: job} of every job's task; each shared preparation is one task more,
        which the jobs needing it wait for (Ray starts them once its result exists)."""
        from bench.execute.ray.progress import Board

        settings = self.settings
        resources = {"num_cpus": settings.cpus_per_task, "num_gpus": settings.gpus_per_task,
                     "max_retries": settings.max_retries}
        self.board = ray.remote(num_cpus=0)(Board).remote()
        prepare = ray.remote(run_preparation_task).options(**resources)
        train = ray.remote(run_job_task).options(**resources)
        prepared: dict[str, object] = {}
        pending = {}
        for key, job in enumerate(jobs):
            needs = []
            for preparation in preparations(job, options) if job.trains else ():
                if preparation.key not in prepared:
                    prepared[preparation.key] = prepare.remote(preparation, settings.threads,
                                                               self.board)
                needs.append(prepared[preparation.key])
            pending[train.remote(job, options, settings.threads, self.board, key, *needs)] = job
        return pending

    def drain(self, ray, pending: dict, options: RunOptions, record) -> None:
        """Write each task's cells as it finishes; show the running tasks meanwhile."""
        from bench.execute.ray.progress import RayView

        jobs = list(pending.values())
        view = RayView(self.bars, jobs)

        def kept() -> str:  # asked at the stop: what is on disk then, not what is hoped for
            return kept_trainings([job for job in pending.values() if job.trains], options)
        # Deferred: a signal only sets STOP's flag, read here at least once a second (raised
        # inside Ray's C++ wait, it would surface as a SystemError).
        with STOP.phase(f"running {len(jobs)} trainings as Ray tasks", kept, defer=True):
            while pending:
                STOP.check()
                done, _ = ray_call(ray.wait, list(pending), num_returns=1, timeout=1.0)
                view.update(ray_call(ray.get, self.board.snapshot.remote()))
                for ref in done:
                    job = pending.pop(ref)
                    for result in self.fetch(ray, ref, job):
                        record(result)
                        view.recorded(result)
                    view.finished(jobs.index(job))
        view.close()

    def fetch(self, ray, ref, job: Job) -> list[CellResult]:
        try:
            value = ray_call(ray.get, ref)
        except ray.exceptions.RayTaskError:
            raise
        except ray.exceptions.RayError as error:
            raise BenchError(f"Ray lost the task training {job.describe()} "
                             f"({type(error).__name__}, after up to {self.settings.max_retries} "
                             f"retries); its last checkpoint is kept in {self.storage}/checkpoints:"
                             " rerun the same command to resume") from None
        if isinstance(value, TaskError):
            raise BenchError(value.message)
        return value


def kept_trainings(unfinished: list[Job], options: RunOptions) -> str:
    """What a stop keeps of the unfinished trainings: which resume from a checkpoint (or a
    stored model) and which restart, since a cancelled task saves nothing on its way out."""
    from bench.core import models

    if not unfinished:
        return "no training was unfinished"
    storage = options.storage_dir
    saved = [job for job in unfinished
             if models.checkpoint_path(storage, job.cells[0]).exists()
             or models.model_path(storage, job.cells[0]).exists()]
    parts = []
    if saved:
        parts.append(f"{len(saved)} of {len(unfinished)} unfinished trainings resume from their "
                     f"checkpoints in {storage}/checkpoints")
    lost = len(unfinished) - len(saved)
    if lost:
        parts.append(f"{lost} of {len(unfinished)} had no checkpoint yet and start again (one is "
                     "written every --checkpoint-every episodes)")
    return "; ".join(parts)


def absolute_paths(options: RunOptions) -> RunOptions:
    """The options with every path absolute: a worker's working directory is not the driver's."""
    fields = ("out_dir", "data_root", "cache_dir", "test_data_root", "models_from", "storage")
    return replace(options, **{name: Path(getattr(options, name)).absolute() for name in fields
                               if getattr(options, name) is not None})


def ray_call(function, *args, **kwargs):
    """``function`` (ray.wait, ray.get); a second Ctrl-C, whose Stopped is raised while Ray's
    C++ code runs, comes out as that Stopped rather than Ray's SystemError around it."""
    try:
        return function(*args, **kwargs)
    except SystemError as error:
        if isinstance(error.__cause__, Stopped):
            raise error.__cause__ from None
        raise


def close(ray, unfinished) -> None:
    """Cancel the tasks whose results will not be read (a stop, an error) and shut Ray down,
    in a deferred phase: the stop watchdog lets it finish (a second Ctrl-C still ends it)."""
    try:
        with STOP.phase("shutting Ray down", defer=True):
            for ref in unfinished:
                ray.cancel(ref, force=True)
            ray.shutdown()
    except Stopped:
        pass  # the stop (or error) that brought us here is the one the caller sees
