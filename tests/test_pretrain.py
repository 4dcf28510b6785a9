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
