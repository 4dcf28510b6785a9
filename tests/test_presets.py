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
