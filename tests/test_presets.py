"""Presets fill in options the user did not give; the command line wins."""

import pytest

from bench.cli_run import run_command
from bench.errors import BenchError
from bench.presets import PRESETS, apply_preset
from bench.run_plan import plan_cells


def options_for(args, tmp_path):
    ctx = run_command.make_context("run", [*args, "--out", str(tmp_path)])
    options = dict(ctx.params)
    explicit = {name for name in options
                if ctx.get_parameter_source(name).name != "DEFAULT"}
    return apply_preset(options.pop("preset"), options, explicit)


def test_preset_values_and_command_line_overrides(tmp_path):
    options = options_for(["--preset", "omniglot-snell", "--methods", "protonet", "--shots", "1"],
                          tmp_path)
    assert options["dataset"] == "omniglot" and options["train_way"] == "60"
    assert options["methods"] == "protonet" and options["shots"] == "1"
    assert options["ways"] == "5,20" and options["test_episodes"] == "1000"


def test_every_preset_plans_cells(tmp_path):
    for name in PRESETS:
        options = options_for(["--preset", name], tmp_path)
        cells, _ = plan_cells(options)
        assert cells and all(cell.test_episodes >= 300 for cell in cells)


def test_unknown_preset(tmp_path):
    with pytest.raises(BenchError, match="unknown preset 'snell'; valid presets: omniglot-snell"):
        options_for(["--preset", "snell"], tmp_path)


def test_no_preset_hard_codes_bf16():
    """bf16 is slower where it is emulated: presets leave it to --precision auto."""
    assert all(preset["options"].get("precision") != "bf16" for preset in PRESETS.values())


def test_mini_snell_trains_1_shot_30_way_and_5_shot_20_way(tmp_path):
    cells, _ = plan_cells(options_for(["--preset", "mini-snell"], tmp_path))
    assert {cell.method.name for cell in cells} == {"protonet", "trm", "cosine"}
    shapes = {(cell.shot, cell.train_way, cell.train_shot, cell.train.query) for cell in cells}
    assert shapes == {(1, 30, 1, 15), (5, 20, 5, 15)}
    assert all(cell.way == 5 and cell.query == 15 and cell.test_episodes == 2000 for cell in cells)
    assert all(dict(cell.dataset_params) == {"augment": "off"} for cell in cells)
    train = cells[0].train
    assert (train.lr, train.lr_step, train.lr_gamma, train.episodes) == (1e-3, 2000, 0.5, 20000)
    assert "49.42" in PRESETS["mini-snell"]["about"]


def test_mini_cpu_shares_one_1_shot_model_per_method(tmp_path):
    cells, _ = plan_cells(options_for(["--preset", "mini-cpu"], tmp_path))
    assert [cell.method.label for cell in cells[:3]] == ["protonet(temperature=64)", "cosine",
                                                         "trm"]
    assert {cell.shot for cell in cells} == {1, 5} and len(cells) == 6
    assert all(cell.test_episodes >= 2000 and cell.query == 15 for cell in cells)
    for method in ("protonet", "cosine", "trm"):
        ids = {cell.training_id for cell in cells if cell.method.name == method}
        assert len(ids) == 1  # the 5-shot cell reuses the 1-shot-trained model
