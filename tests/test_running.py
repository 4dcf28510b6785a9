"""Watching a long run: a training's log so far is on disk while it trains, reports name the
unfinished trainings and draw their curves, and a finished training leaves nothing behind."""

import math
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.cli.report import report_command
from bench.core.running import describe, read_running, running_dir, write_running

EXAMPLE = Path(__file__).parent / "data" / "example_results"
ABOUT = {"label": "trm mini-imagenet 5-way 5-shot seed 0", "method": "trm", "episodes": 4000}
LOG = [{"episode": e, "loss": 1.0 / e, "train_acc": 0.5, "lr": 1e-3,
        "val_acc": {250: 0.40, 500: 0.45}.get(e, math.nan)} for e in range(1, 701)]


def test_a_running_log_is_read_back_and_described(tmp_path):
    write_running(tmp_path, "abc", ABOUT, LOG)
    (item,) = read_running([tmp_path])
    assert len(item["log"]) == 700
    assert describe(item) == ("trm mini-imagenet 5-way 5-shot seed 0: episode 700 of at most "
                              "4000, best validation 45.0% (episode 500)")


def test_reports_name_unfinished_trainings_and_draw_them(tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(EXAMPLE, copy)
    write_running(copy, "abc", ABOUT, LOG)
    page = tmp_path / "report.html"
    result = CliRunner().invoke(report_command, [str(copy), "--html", str(page), "--format",
                                                 "markdown"])
    assert result.exit_code == 0, result.output
    assert "unfinished: trm mini-imagenet 5-way 5-shot seed 0: episode 700" in result.output
    text = page.read_text()
    assert "Unfinished trainings" in text and "episode 700 of at most 4000" in text


def test_a_finished_training_leaves_no_running_log(tmp_path, capsys, monkeypatch, glyph_cache):
    monkeypatch.setenv("FEWSHOT_BENCH_CACHE", str(glyph_cache))
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--methods", "protonet", "--shots", "1", "--train-episodes", "6",
              "--checkpoint-every", "2", "--val-every", "0", "--test-episodes", "4", "--query",
              "3", "--train-query", "3", "-D", "instances=8", "--threads", "1", "--out",
              str(tmp_path)])
    assert exit_info.value.code == 0, capsys.readouterr().err
    assert not list(running_dir(tmp_path).glob("*"))


def test_a_stopped_training_keeps_its_log_so_far(tmp_path, monkeypatch, glyph_cache):
    """Training stopped by a signal (should_stop) at episode 4: its log so far stays, for the
    report, beside its checkpoint."""
    from bench.core import cells
    from bench.core.config import Cell, MethodSpec, TrainConfig
    from bench.core.model import Progress
    from bench.train import cell as train_cell

    monkeypatch.setenv("FEWSHOT_BENCH_CACHE", str(glyph_cache))
    cell = Cell(MethodSpec("protonet"), "glyphs", (("instances", "8"),), 5, 1, 3, 4, 0,
                TrainConfig(episodes=50, query=3, val_every=0, checkpoint_every=2))
    options = cells.RunOptions(out_dir=tmp_path)
    adapter = cells.load_adapter(cell, options)
    stops = iter([False] * 3 + [True] * 100)
    with pytest.raises(cells.Interrupted, match="stopped while training"):
        train_cell.trained_model(cell, adapter, options, Progress(), lambda: next(stops), False)
    (item,) = read_running([tmp_path])
    assert int(item["log"]["episode"].max()) == 4


def test_ray_view_without_a_terminal_prints_a_line_every_tenth(capsys):
    from bench.core.config import Cell, MethodSpec, TrainConfig
    from bench.execute.jobs import Job
    from bench.execute.ray.progress import RayView

    job = Job((Cell(MethodSpec("trm"), "glyphs", (), 5, 1, 15, 10, 0, TrainConfig()),))
    view = RayView(None, [job])
    for done in range(0, 101, 5):
        view.update({0: {"label": "trm", "starts": 1, "where": "node", "stage": "train",
                         "done": done, "total": 100, "status": "loss 0.5"}})
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "ray task node: trm started"
    assert [line for line in err if line.startswith("train trm:")] == [
        f"train trm: {done}/100 loss 0.5" for done in range(10, 101, 10)]
