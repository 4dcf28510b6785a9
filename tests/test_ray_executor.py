"""`bench run --executor ray`: the numbers of a local run, a killed worker retried and resumed, a
stopped driver resumed by its rerun, and the one-line errors. Each Ray run starts its own local
Ray (on this machine's cores) and shuts it down."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import without_progress

from bench.cli import main
from bench.errors import BenchError

ray = pytest.importorskip("ray", reason="Ray is not installed (make setup installs ray==2.60.0)")

BENCH = str(Path(sys.executable).parent / "bench")
GRID = ["run", "--methods", "protonet,cosine", "--shots", "1,5", "--train-episodes", "40",
        "--checkpoint-every", "5", "--val-every", "20", "--val-episodes", "5",
        "--test-episodes", "20", "--train-query", "3", "--query", "3", "-D", "instances=8"]
RAY = ["--executor", "ray", "--cpus-per-task", "1"]


def start(out, cache, *extra):
    env = {**os.environ, "FEWSHOT_BENCH_CACHE": str(cache)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([BENCH, *GRID, *extra, "--out", str(out)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process, expected=0):
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == expected, f"exit {process.returncode}:\n{stdout}\n{stderr}"
    return stdout, stderr


@pytest.fixture(scope="module")
def local(tmp_path_factory, glyph_cache):
    """The grid run locally with one thread (a Ray task with one CPU runs one)."""
    out = tmp_path_factory.mktemp("local")
    finish(start(out, glyph_cache, "--threads", "1"))
    return out


def assert_same_numbers(reference: Path, out: Path) -> None:
    """Same cells, bit-identical acc and ci95, per-episode files and training logs."""
    a = pd.read_csv(reference / "results.csv").sort_values("cell_id").reset_index(drop=True)
    b = pd.read_csv(out / "results.csv").sort_values("cell_id").reset_index(drop=True)
    assert b["cell_id"].is_unique and len(b) == 4
    assert list(a["cell_id"]) == list(b["cell_id"])
    assert list(a["acc"]) == list(b["acc"]) and list(a["ci95"]) == list(b["ci95"])
    for cell_id in a["cell_id"]:
        for folder, suffix in (("per_episode", "npy"), ("logs", "csv"), ("configs", "json")):
            name = f"{folder}/{cell_id}.{suffix}"
            assert (reference / name).read_bytes() == (out / name).read_bytes(), name


def test_ray_grid_gives_the_local_numbers_and_a_rerun_skips_it(tmp_path, glyph_cache, local):
    out = tmp_path / "ray"
    stdout, stderr = finish(start(out, glyph_cache, *RAY))
    assert "4 cells run" in stdout and "(4/4 cells)" in stderr  # progress: stderr
    assert_same_numbers(local, out)
    assert not list((out / "checkpoints").glob("*.pt"))
    assert len(list((out / "models").glob("*.pt"))) == 4
    stdout, _ = finish(start(out, glyph_cache, *RAY))  # finished: no Ray is even started
    assert "0 cells run, 4 already finished" in stdout


def descendants(pid: int) -> set[int]:
    """Process ids below ``pid`` (Ray's workers are children of the raylet the driver starts)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1]
                                               .split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def training_worker(driver: int) -> int | None:
    for pid in descendants(driver):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::run_job_task"):
                return pid
        except OSError:
            continue
    return None


def test_killed_worker_is_retried_and_resumes_to_the_same_numbers(tmp_path, glyph_cache, local):
    out = tmp_path / "killed"
    process = start(out, glyph_cache, *RAY)
    deadline, killed = time.time() + 300, None
    while killed is None and time.time() < deadline and process.poll() is None:
        worker = training_worker(process.pid)
        if worker and list((out / "checkpoints").glob("*.pt")):
            os.kill(worker, signal.SIGKILL)  # a task in training, after its first checkpoint
            killed = worker
        time.sleep(0.05)
    assert killed, "no training Ray task was seen with a checkpoint"
    _, stderr = finish(process)
    assert "(retry 1) started" in stderr
    assert_same_numbers(local, out)


def test_stopped_driver_resumes_on_rerun_without_a_duplicate(tmp_path, glyph_cache, local):
    out = tmp_path / "stopped"
    process = start(out, glyph_cache, *RAY)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and not (
            (out / "results.csv").exists() and len(pd.read_csv(out / "results.csv")) >= 1):
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    if process.returncode == 143:  # 128 + SIGTERM; else it had finished before the signal
        assert "rerun the same command to resume" in stderr.strip().splitlines()[-1]
    finish(start(out, glyph_cache, *RAY))
    assert_same_numbers(local, out)


@pytest.mark.parametrize("argv, message", [
    (["--executor", "ray", "--ray-address", "127.0.0.1:9"], "no Ray cluster answers at"),
    (["--executor", "ray", "--ray-address", "nowhere"], "is not HOST:PORT"),
    (["--executor", "ray", "--gpus-per-task", "0.5"], "with --device cpu; add --device cuda"),
    (["--executor", "ray", "--device", "cuda", "--gpus-per-task", "1.5"], "a whole number"),
    (["--executor", "ray", "--device", "cuda:1"], "pass --device cuda"),
    (["--executor", "ray", "--cpus-per-task", "0"], "--cpus-per-task must be positive"),
    (["--executor", "ray", "--threads", "2"], "with ray each task runs --cpus-per-task"),
    (["--cpus-per-task", "2"], "apply to --executor ray"),
])
def test_bad_ray_options_are_one_line_exit_2(argv, message, tmp_path, capsys, monkeypatch,
                                             glyph_cache):
    monkeypatch.setenv("FEWSHOT_BENCH_CACHE", str(glyph_cache))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main([*GRID, *argv, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(without_progress(err)) == 1
    assert not (tmp_path / "out" / "results.csv").exists()


def test_missing_ray_is_a_one_line_error(monkeypatch):
    from bench.execute.ray.executor import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(BenchError, match=r"needs Ray, which is not installed; run `make setup`"):
        import_ray()


class FakeRay:
    """ray.nodes() of a cluster: a dead GPU node and a live CPU node."""

    @staticmethod
    def nodes():
        return [{"Alive": False, "Resources": {"CPU": 8.0, "GPU": 4.0}},
                {"Alive": True, "Resources": {"CPU": 2.0}}]


def test_more_gpus_or_cpus_than_any_live_node_has_is_refused():
    from bench.core.cells import RaySettings
    from bench.execute.ray.executor import check_resources

    check_resources(FakeRay, RaySettings(cpus_per_task=2))
    with pytest.raises(BenchError, match=r"--gpus-per-task 0.5 but no node .* more than 0 GPUs"):
        check_resources(FakeRay, RaySettings(gpus_per_task=0.5))
    with pytest.raises(BenchError, match=r"--cpus-per-task 3 but no node .* more than 2 CPUs"):
        check_resources(FakeRay, RaySettings(cpus_per_task=3))


def test_gpu_task_on_this_cpu_only_ray_is_refused(tmp_path, glyph_cache):
    """The real check against a started local Ray (this machine has no GPU)."""
    if any(Path(f"/dev/nvidia{i}").exists() for i in range(8)):
        pytest.skip("this machine has a GPU")
    process = start(tmp_path / "gpu", glyph_cache, *RAY, "--device", "cuda")
    _, stderr = finish(process, expected=2)
    assert "--gpus-per-task 1 but no node of the Ray cluster has more than 0 GPUs" in stderr
    assert stderr.strip().splitlines()[-1].startswith("error: ")


def tiny_cells():
    from bench.core.config import Cell, MethodSpec, TrainConfig

    train = TrainConfig(episodes=10, query=3, val_every=0, checkpoint_every=5)
    return [Cell(MethodSpec(name), "glyphs", (("instances", "8"),), 5, 1, 3, 10, 0, train)
            for name in ("protonet", "cosine")]


def test_a_shared_preparation_is_one_task_that_the_trainings_wait_for(tmp_path, glyph_cache,
                                                                      monkeypatch):
    """Two trainings needing one preparation: it runs once (os.mkdir fails a second time), as a
    task of its own, done before either training stored its model."""
    from bench.core.cells import RaySettings, RunOptions
    from bench.execute.driver import run_grid
    from bench.execute.jobs import Preparation
    from bench.execute.ray import executor as ray_executor

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    prepared = tmp_path / "storage" / "prepared"
    prepared.parent.mkdir()
    monkeypatch.setattr(ray_executor, "preparations", lambda job, options: (
        Preparation("shared", "a shared step", os.mkdir, (str(prepared),)),))
    options = RunOptions(out_dir=tmp_path / "out", cache_dir=glyph_cache,
                         storage=tmp_path / "storage")
    outcome = run_grid(tiny_cells(), options,
                       executor=ray_executor.RayExecutor(RaySettings()))
    assert len(outcome.rows) == 2 and prepared.is_dir()
    models = list((tmp_path / "storage" / "models").glob("*.pt"))
    assert len(models) == 2 and not (tmp_path / "out" / "models").exists()
    assert all(prepared.stat().st_mtime_ns <= model.stat().st_mtime_ns for model in models)


def test_the_local_loop_runs_preparations_inline_before_each_training(tmp_path, glyph_cache,
                                                                      monkeypatch):
    from bench.core.cells import RunOptions
    from bench.execute import jobs
    from bench.execute.driver import run_grid

    calls = []
    monkeypatch.setattr(jobs, "preparations", lambda job, options: (
        jobs.Preparation("shared", "a shared step", calls.append, (job.training_id,)),))
    outcome = run_grid(tiny_cells(), RunOptions(out_dir=tmp_path, cache_dir=glyph_cache))
    assert len(outcome.rows) == 2
    assert calls == [cell.training_id for cell in tiny_cells()]


def test_a_stop_says_which_trainings_resume_and_which_restart(tmp_path):
    """A cancelled Ray task saves nothing on its way out: the stop message counts the trainings
    with a checkpoint (they resume) apart from those without (they start again)."""
    from bench.core import models
    from bench.core.cells import RunOptions
    from bench.core.config import Cell, MethodSpec, TrainConfig
    from bench.execute.jobs import Job
    from bench.execute.ray.executor import kept_trainings

    def job(seed):
        return Job((Cell(MethodSpec("protonet"), "glyphs", (), 5, 1, 15, 10, seed,
                         TrainConfig(episodes=100)),))

    jobs = [job(0), job(1), job(2)]
    path = models.checkpoint_path(tmp_path, jobs[0].cells[0])
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    text = kept_trainings(jobs, RunOptions(out_dir=tmp_path))
    assert text.startswith("1 of 3 unfinished trainings resume from their checkpoints")
    assert "2 of 3 had no checkpoint yet and start again" in text
    assert kept_trainings([], RunOptions(out_dir=tmp_path)) == "no training was unfinished"


def alive(pid: int) -> bool:
    """A running process (a zombie waiting for its parent to reap it has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_a_stop_while_ray_starts_leaves_no_process_behind(monkeypatch):
    """Ctrl-C during ray.init: what the start had launched (here a child with a grandchild, as a
    raylet has its agents) is ended, not left under PID 1, and the stop goes on up."""
    from bench.core.cells import RaySettings
    from bench.execute.ray import executor as ray_executor

    started, shut = [], []

    class FakeRay:
        @staticmethod
        def init(**kwargs):
            child = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60"])
            time.sleep(0.3)  # the grandchildren exist
            started.append((child, ray_executor.descendants(child.pid)))
            raise KeyboardInterrupt

        @staticmethod
        def shutdown():
            shut.append(True)

    monkeypatch.setattr(ray_executor, "import_ray", lambda: FakeRay)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(KeyboardInterrupt):
        ray_executor.connect(RaySettings())
    (child, grandchildren), = started
    assert shut == [True] and len(grandchildren) == 2
    assert child.wait(timeout=5) == -signal.SIGKILL
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in grandchildren):
        assert time.monotonic() < deadline, "a grandchild outlived the abandoned start"
        time.sleep(0.05)
