"""The grid as jobs: one per training, cells in the grid's order, finished cells skipped."""

from dataclasses import replace

import pytest

from bench.core.config import Cell, MethodSpec, TrainConfig
from bench.execute.jobs import plan_jobs


def cell(method="protonet", way=5, shot=1, test_dataset=None):
    train = TrainConfig(episodes=10, way=20, query=3)
    return Cell(MethodSpec(method), "glyphs", (), way, shot, 3, 10, 0, train, test_dataset)


def test_cells_sharing_a_training_form_one_job_in_grid_order():
    cells = [cell("protonet", 5), cell("cosine", 5), cell("protonet", 20), cell("cosine", 20),
             cell("protonet", 5, shot=5)]
    jobs, skipped = plan_jobs(cells, finished=set(), force=False)
    assert [[c.describe() for c in job.cells] for job in jobs] == [
        [cells[0].describe(), cells[2].describe()], [cells[1].describe(), cells[3].describe()],
        [cells[4].describe()]]
    assert skipped == [] and not any(job.retrain for job in jobs)
    assert all(len({c.training_id for c in job.cells}) == 1 for job in jobs)


def test_finished_cells_are_skipped_unless_forced_and_force_retrains():
    cells = [cell("protonet", 5), cell("protonet", 20)]
    jobs, skipped = plan_jobs(cells, finished={cells[0].cell_id}, force=False)
    assert skipped == [cells[0]] and [job.cells for job in jobs] == [(cells[1],)]
    jobs, skipped = plan_jobs(cells, finished={cells[0].cell_id}, force=True)
    assert skipped == [] and len(jobs) == 1 and jobs[0].retrain and jobs[0].trains


def test_cross_domain_cells_are_a_job_that_never_trains():
    trained, crossed = cell("protonet"), replace(cell("protonet"), test_dataset="glyphs")
    jobs, _ = plan_jobs([trained, crossed], finished=set(), force=True)
    assert [job.trains for job in jobs] == [True, False]
    assert [job.retrain for job in jobs] == [True, False]


def test_bad_episode_shape_is_refused_before_any_job_reaches_an_executor(tmp_path, glyph_cache):
    """run_grid checks every cell's shape in the driver first: a too-large --query is refused
    before a Ray task (or the shared pre-training) runs."""
    from bench.core.cells import RunOptions
    from bench.core.config import Cell, MethodSpec, TrainConfig
    from bench.errors import BenchError
    from bench.execute.driver import run_grid

    class Executor:
        ran = False

        def run(self, jobs, options, record):
            Executor.ran = True

    train = TrainConfig(episodes=10, query=3, val_every=0, pretrain_epochs=1)
    good = Cell(MethodSpec("protonet"), "glyphs", (("instances", "8"),), 5, 1, 3, 10, 0, train)
    bad = Cell(MethodSpec("cosine"), "glyphs", (("instances", "8"),), 5, 1, 15, 10, 0, train)
    options = RunOptions(out_dir=tmp_path, cache_dir=glyph_cache)
    with pytest.raises(BenchError, match=r"shot\+query=1\+15 is more than the 8 images"):
        run_grid([good, bad], options, executor=Executor())
    assert not Executor.ran and not (tmp_path / "pretrained").exists()


def test_the_local_loop_loads_the_training_split_once_for_pretraining_and_training(
        tmp_path, glyph_cache, monkeypatch):
    """The pre-training preparation and the training after it share the process's dataset
    cache: the training split is loaded once."""
    from bench.core.cells import RunOptions
    from bench.execute.driver import run_grid
    from bench.registry import DATASETS

    loads = []
    adapter_class = DATASETS.get("glyphs")
    real = adapter_class.load_split
    monkeypatch.setattr(adapter_class, "load_split",
                        lambda self, split: loads.append(split) or real(self, split))
    train = TrainConfig(episodes=2, query=3, val_every=0, pretrain_epochs=1, pretrain_batch=64)
    cells = [Cell(MethodSpec(name), "glyphs", (("instances", "8"),), 5, 1, 3, 4, 0, train)
             for name in ("protonet", "cosine")]
    outcome = run_grid(cells, RunOptions(out_dir=tmp_path, cache_dir=glyph_cache))
    assert len(outcome.rows) == 2 and (tmp_path / "pretrained").is_dir()
    assert loads.count("train") == 1, loads
