"""Supervised pre-training: stored once and shared between cells, resumable to the same weights,
recorded in the cell's identity, required by baseline/baselinepp, and neutral to the RNG."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import without_progress

import bench.train.pretrain as pretrain
from bench.core.config import Cell, MethodSpec, TrainConfig
from bench.core.model import build_model, data_shape
from bench.interrupt import Stopped

CPU = torch.device("cpu")
TRAIN = TrainConfig(episodes=3, query=3, pretrain_epochs=1, pretrain_batch=48)  # 5 batches


def cell_for(method, train=TRAIN, seed=0):
    return Cell(MethodSpec(method), "glyphs", (), 5, 1, 3, 10, seed, train)


def pretrained(method, out_dir, images, should_stop=lambda: False, train=TRAIN):
    cell = cell_for(method, train)
    model = build_model(cell, 1, **data_shape(images))
    record = pretrain.pretrain_into(model, cell, images, out_dir, CPU, should_stop=should_stop)
    return model, record


def test_shared_between_cells_of_one_backbone(tmp_path, monkeypatch, synthetic):
    images = synthetic
    calls = []
    real = pretrain.train_backbone
    monkeypatch.setattr(pretrain, "train_backbone",
                        lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    protonet, first = pretrained("protonet", tmp_path, images)
    baseline, second = pretrained("baseline", tmp_path, images)  # conv4, linear: the same
    assert len(calls) == 1 and first["pretrained"] == second["pretrained"]
    for a, b in zip(protonet.backbone.state_dict().values(),
                    baseline.backbone.state_dict().values()):
        assert torch.equal(a, b)
    _, cosine = pretrained("baselinepp", tmp_path, images)  # its cosine classifier: another
    assert len(calls) == 2 and cosine["pretrained"] != first["pretrained"]
    assert len(list((tmp_path / "pretrained").glob("*.pt"))) == 2


def test_interrupted_pretraining_resumes_to_identical_weights(tmp_path, synthetic):
    images = synthetic
    straight, _ = pretrained("protonet", tmp_path / "straight", images)
    stops = iter([False, False, False, True])
    with pytest.raises(Stopped, match="rerun the same command to resume"):
        pretrained("protonet", tmp_path / "resumed", images, lambda: next(stops, False))
    assert list((tmp_path / "resumed" / "checkpoints").glob("pretrain-*.pt"))
    resumed, _ = pretrained("protonet", tmp_path / "resumed", images)
    for a, b in zip(straight.backbone.state_dict().values(),
                    resumed.backbone.state_dict().values()):
        assert torch.equal(a, b)
    assert not list((tmp_path / "resumed" / "checkpoints").glob("pretrain-*.pt"))


def test_leaves_the_random_state_and_changes_the_weights(tmp_path, synthetic):
    images = synthetic
    torch.manual_seed(5)
    model = build_model(cell_for("protonet"), 1)
    initial = model.backbone[0][0].weight.clone()
    state = torch.get_rng_state()
    pretrain.pretrain_into(model, cell_for("protonet"), images, tmp_path, CPU)
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(model.backbone[0][0].weight, initial)


def test_recorded_in_the_identity_only_when_used():
    plain = cell_for("protonet", replace(TRAIN, pretrain_epochs=0))
    assert not any(key.startswith("pretrain") for key in plain.training()["train"])
    assert cell_for("protonet").training()["train"]["pretrain_epochs"] == 1
    assert cell_for("protonet").cell_id != plain.cell_id


def run_bench(*args, cache):
    bench = str(Path(sys.executable).parent / "bench")
    return subprocess.run([bench, *args], capture_output=True, text=True, timeout=120,
                          env={"FEWSHOT_BENCH_CACHE": str(cache), "PATH": "/usr/bin:/bin"})


def test_baseline_without_pretraining_is_a_one_line_error(tmp_path):
    result = run_bench("run", "--methods", "protonet,baseline", "--out", str(tmp_path / "out"),
                       cache=tmp_path)
    assert result.returncode == 2
    assert "add --pretrain-epochs N" in result.stderr and "Traceback" not in result.stderr
    assert len(without_progress(result.stderr)) == 1


class Recorder:
    """A Progress that keeps every pre-training report."""

    def __init__(self):
        self.reports = []

    def pretrained(self, epoch, total, loss, images_per_second=None):
        self.reports.append((epoch, total, loss, images_per_second))


def test_pretraining_reports_epochs_and_images_per_second(tmp_path, synthetic, monkeypatch):
    monkeypatch.setattr(pretrain, "PROGRESS_EVERY", 2)  # 5 batches: reports after 2 and 4
    cell = cell_for("protonet", replace(TRAIN, pretrain_epochs=2))
    model = build_model(cell, 1, **data_shape(synthetic))
    recorder = Recorder()
    pretrain.pretrain_into(model, cell, synthetic, tmp_path, CPU, progress=recorder)
    epochs = [report[0] for report in recorder.reports]
    assert epochs == [0, 0.4, 0.8, 1, 1.4, 1.8, 2]
    assert all(total == 2 for _, total, _, _ in recorder.reports)
    ends = [report for report in recorder.reports if report[0] in (1, 2)]
    assert all(loss == loss and rate > 0 for _, _, loss, rate in ends)  # a loss and a rate
    within = [report for report in recorder.reports if report[0] not in (0, 1, 2)]
    assert all(loss != loss and rate > 0 for _, _, loss, rate in within)  # nan: mid-epoch


def test_bench_run_shows_pretraining_progress(tmp_path, glyph_cache, capsys, monkeypatch):
    """The local display names the pre-training's epochs and images/s before training starts
    (the preparation step gets the cell's progress)."""
    from helpers import run_main

    code, output = run_main(
        ["run", "--methods", "protonet", "--shots", "1", "--pretrain-epochs", "1",
         "--train-episodes", "2", "--val-every", "0", "--test-episodes", "10", "--query", "5",
         "--train-query", "5", "-D", "instances=8", "--threads", "1", "--out",
         str(tmp_path / "out")], capsys, monkeypatch, glyph_cache)
    assert code == 0, output.err
    lines = [line for line in output.err.splitlines() if line.startswith("pretrain ")]
    assert lines[0].endswith("epoch 0/1")
    assert "epoch 1/1 loss " in lines[-1] and "images/s" in lines[-1]
    first_training = next(i for i, line in enumerate(output.err.splitlines())
                          if line.startswith("train "))
    assert output.err.splitlines().index(lines[-1]) < first_training


def test_ray_view_shows_a_preparation_and_drops_it_when_done(capsys):
    """A preparation task reports to the Board under its own key: a line per tenth of its
    epochs (no terminal), a bar labelled "pretrain" (terminal), gone once it is prepared."""
    import io

    from rich.console import Console

    from bench.execute.jobs import Job
    from bench.execute.progress import make_bars
    from bench.execute.ray.progress import BoardProgress, RayView, preparation_board_key

    job = Job((cell_for("protonet"),))
    key = preparation_board_key("pretrain-abc")
    entry = {"starts": 1, "label": "the pre-training of protonet", "stage": "pretrain",
             "done": 1, "total": 2, "status": "loss 2.000, 812 images/s", "where": "h:1"}
    view = RayView(None, [job])
    view.update({key: entry})
    assert "pretrain the pre-training of protonet: epoch 1/2 loss 2.000, 812 images/s" in \
        capsys.readouterr().err
    console = Console(width=120, record=True, file=io.StringIO(), force_terminal=True)
    bars = make_bars(console=console)
    view = RayView(bars, [job])
    view.update({key: entry})
    descriptions = [task.description for task in bars.tasks]
    assert any(text.startswith("pretrain the pre-training of protonet") for text in descriptions)
    view.update({key: {**entry, "stage": "prepared"}})
    assert not any(task.description.startswith("pretrain") for task in bars.tasks)

    sent = []

    class FakeBoard:
        class report:  # noqa: N801 - mimics an actor method
            @staticmethod
            def remote(board_key, update, start=False):
                sent.append((board_key, update))

    progress = BoardProgress(FakeBoard, key)
    progress.label = "the pre-training of protonet"
    progress.pretrained(1, 2, 2.0, 812.4)
    progress.prepared()
    assert sent[0] == (key, {"label": "the pre-training of protonet", "stage": "pretrain",
                             "done": 1, "total": 2, "status": "loss 2.000, 812 images/s"})
    assert sent[-1] == (key, {"stage": "prepared"})
