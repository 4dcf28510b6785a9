"""The local executor of `bench run`: the grid run in this process with live progress; Ctrl-C
exits 130 and SIGTERM 143 (bench.interrupt)."""

from __future__ import annotations

import time
from dataclasses import replace

from bench import results
from bench.core.cells import RunOptions
from bench.core.config import Cell
from bench.core.env import git_state
from bench.errors import BenchError
from bench.execute.driver import GridOutcome, run_grid
from bench.interrupt import STOP, Stopped


def execute(cells: list[Cell], options: RunOptions, threads: int | None = None,
            executor=None) -> tuple[GridOutcome, float]:
    """Run the grid with live progress: (what happened, seconds). Ctrl-C exits 130, SIGTERM
    143 (bench.interrupt). ``threads``: torch threads (checked by the caller); ``executor``:
    bench.execute.ray.executor.RayExecutor, or None for this process."""
    import torch

    from bench.execute.progress import announce_cache_builds, live_progress, progress_for

    options = replace(options, code_state=git_state())  # the rows name the commit started from
    if threads:
        torch.set_num_threads(threads)
    if executor is None:  # with Ray the workers hold the GPUs, the driver may have none
        check_cuda(options.device)
    results.finished_rows(options.out_dir)  # a damaged results file fails before any work
    wanted = {cell.cell_id for cell in cells}
    STOP.summary = lambda: (f"{len(wanted & results.finished_cell_ids(options.out_dir))} of "
                            f"{len(wanted)} cells finished, in "
                            f"{results.results_path(options.out_dir)}")
    start = time.perf_counter()
    try:
        with live_progress() as bars, announce_cache_builds(bars):
            if executor is not None:
                executor.bars = bars
            outcome = run_grid(cells, options, lambda cell: progress_for(bars, cell),
                               should_stop=STOP, executor=executor)
    except Stopped as stopped:
        STOP.exit(str(stopped))
    return outcome, time.perf_counter() - start


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
