"""No option value is silently dropped: list options make a grid, repeated or unused values are
one-line errors, and values outside their range are refused."""

import pytest

from bench.cli.run import run_command
from bench.errors import BenchError
from bench.plan.cells import plan_cells
from bench.plan.presets import apply_preset


def cells_of(tmp_path, *args):
    import click

    context = run_command.make_context("run", [*args, "--out", str(tmp_path)])
    options = dict(context.params)
    explicit = {name for name in options if context.get_parameter_source(name)
                is not click.core.ParameterSource.DEFAULT}
    options = apply_preset(options.pop("preset"), options, explicit)
    return plan_cells(options)[0]


@pytest.mark.parametrize("option, field", [("--query", "query"), ("--train-shot", "train_shot"),
                                           ("--train-query", "train_query")])
def test_a_list_is_a_grid(tmp_path, option, field):
    cells = cells_of(tmp_path, "--methods", "protonet", "--shots", "1", option, "5,10")
    values = [getattr(cell, field) if field != "train_query" else cell.train.query
              for cell in cells]
    assert sorted(values) == [5, 10] and len({cell.cell_id for cell in cells}) == 2


@pytest.mark.parametrize("args, message", [
    (["--train-way", "5:20", "--shots", "1"], "--train-way gives training ways for 5-shot only"),
    (["--train-episodes", "1:2,1:3"], "--train-episodes gives 1-shot twice"),
    (["--train-way", "1:5,1:20"], "--train-way gives 1-shot twice"),
    (["--methods", "protonet(backbone=conv4,backbone=conv64f)"],
     "parameter backbone of method protonet is given twice"),
    (["--lr-gamma", "-0.5"], "--lr-gamma must be in (0, 1]"),
    (["--methods", "frn(gamma=-1)"], "gamma=-1.0 of frn must be > 0"),
    (["--seed", "0,0"], "--seed lists 0 more than once"),
    (["--ways", "5,5"], "--ways lists 5 more than once"),
    (["--query", "10,10"], "--query lists 10 more than once"),
])
def test_values_that_would_be_dropped_are_errors(tmp_path, args, message):
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        cells_of(tmp_path, *args)


def test_a_preset_narrowed_by_shots_keeps_its_per_shot_settings(tmp_path):
    cells = cells_of(tmp_path, "--preset", "mini-snell", "--shots", "1", "--methods", "protonet",
                     "--data-root", str(tmp_path))
    assert {cell.train_way for cell in cells} == {30}


@pytest.mark.parametrize("text, message", [("trm(attn_dim=64))", "closes a parenthesis"),
                                           ("trm(attn_dim=64", "leaves a parenthesis open")])
def test_unbalanced_parentheses_are_named(tmp_path, text, message):
    with pytest.raises(BenchError, match=message):
        cells_of(tmp_path, "--methods", text)


@pytest.mark.parametrize("name", ["attn_dim", "max_attn_mib", "sinkhorn_iters"])
def test_each_trm_size_is_named_when_wrong(tmp_path, name):
    with pytest.raises(BenchError, match=f"^{name} of trm must be a positive integer, got 0"):
        cells_of(tmp_path, "--methods", f"trm({name}=0)")
