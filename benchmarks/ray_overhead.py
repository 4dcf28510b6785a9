"""Ray's own costs in `bench run --executor ray`, apart from training: starting a local Ray (as
bench.execute.ray.executor.connect does), the progress actor, a worker's first task (its process
imports torch and bench), a warm task's round trip, and the shutdown.

Usage (repository root): .venv/bin/python benchmarks/ray_overhead.py [ROUNDS]
"""

import sys
import time

from bench.core.cells import RaySettings
from bench.execute.ray.executor import connect
from bench.execute.ray.progress import Board


def imports_bench() -> float:
    start = time.perf_counter()
    import torch  # noqa: F401

    import bench.execute.jobs  # noqa: F401
    return time.perf_counter() - start


def nothing() -> None:
    return None


def main(rounds: int) -> None:
    start = time.perf_counter()
    ray = connect(RaySettings())
    started = time.perf_counter()
    board = ray.remote(num_cpus=0)(Board).remote()
    ray.get(board.snapshot.remote())
    actor = time.perf_counter()
    cpus = int(ray.cluster_resources()["CPU"])
    first = ray.remote(num_cpus=1)(imports_bench)
    imports = ray.get([first.remote() for _ in range(cpus)])
    cold = time.perf_counter()
    task = ray.remote(num_cpus=1)(nothing)
    warm_start = time.perf_counter()
    for _ in range(rounds):
        ray.get(task.remote())
    warm = (time.perf_counter() - warm_start) / rounds
    before = time.perf_counter()
    ray.shutdown()
    down = time.perf_counter() - before
    print(f"ray.init (local, {cpus} CPUs): {started - start:.1f} s; progress actor: "
          f"{actor - started:.1f} s; first task of {cpus} workers (import torch + bench "
          f"{', '.join(f'{t:.1f}' for t in imports)} s): {cold - actor:.1f} s wall; warm task "
          f"round trip: {1000 * warm:.1f} ms (mean of {rounds}); shutdown: {down:.1f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
