"""Presets fill in options the user did not give; the command line wins."""

import pytest

from bench.cli.run import run_command
from bench.errors import BenchError
from bench.plan.cells import plan_cells
from bench.plan.presets import PRESETS, apply_preset


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


def test_cub_chen_is_chens_schedule(tmp_path):
    """60,000 training episodes at 1-shot, 40,000 at 5-shot, 16 training queries, Adam 1e-3
    without decay, validation kept, at least 2,000 test episodes of 15 queries on closer-look."""
    cells, _ = plan_cells(options_for(["--preset", "cub-chen"], tmp_path))
    assert {cell.method.name for cell in cells} == {"protonet", "cosine", "trm"}
    assert {cell.shot: cell.train.episodes for cell in cells} == {1: 60000, 5: 40000}
    for cell in cells:
        assert (cell.dataset, cell.dataset_config().split, cell.way, cell.query) == (
            "cub", "closer-look", 5, 15)
        assert cell.test_episodes >= 2000 and cell.train.query == 16
        assert (cell.train.lr, cell.train.lr_step, cell.train_way) == (1e-3, 0, 5)
        assert cell.train.val_every > 0


@pytest.mark.parametrize("args, expected", [
    (["--shots", "1,5", "--train-episodes", "1:60,5:40"], {1: 60, 5: 40}),
    (["--shots", "1,5", "--train-episodes", "70"], {1: 70, 5: 70}),
    (["--shots", "1,5", "--train-shot", "1", "--train-episodes", "1:60,5:40"], {1: 60, 5: 60}),
])
def test_train_episodes_per_training_shot(tmp_path, args, expected):
    cells, _ = plan_cells(options_for(["--methods", "protonet", *args], tmp_path))
    assert {cell.shot: cell.train.episodes for cell in cells} == expected


@pytest.mark.parametrize("value, message", [
    ("1:60", "no count for 5-shot training; add 5:N"),
    ("1:60,40", "mixes N and SHOT:N"),
    ("1:x,5:40", "--train-episodes 'x' is not an integer"),
])
def test_bad_train_episodes_per_shot(tmp_path, value, message):
    with pytest.raises(BenchError, match=message):
        plan_cells(options_for(["--shots", "1,5", "--train-episodes", value], tmp_path))


def test_cub_cpu_set(tmp_path):
    """protonet, cosine, trm at 5-way 1/5-shot on closer-look 84×84, 15 queries, ≥ 2,000 test
    episodes; the miniImageNet pilot's recipe: pre-training, then one 1-shot model per method."""
    options = options_for(["--preset", "cub-cpu"], tmp_path)
    cells, _ = plan_cells(options)
    assert len(cells) == 6 and options["threads"] == 2
    assert {(cell.method.name, cell.shot) for cell in cells} == {
        (method, shot) for method in ("protonet", "cosine", "trm") for shot in (1, 5)}
    for method in ("protonet", "cosine", "trm"):
        assert len({cell.training_id for cell in cells if cell.method.name == method}) == 1
    for cell in cells:
        config = cell.dataset_config()
        assert (cell.dataset, config.split, config.size, config.crop, config.augment) == (
            "cub", "closer-look", 84, "none", "on")
        assert (cell.way, cell.query, cell.train_way, cell.train_shot) == (5, 15, 5, 1)
        assert cell.test_episodes >= 2000 and cell.train.pretrain_epochs > 0


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
    # the pilot's fastest learner: supervised pre-training first (PILOT.md), then 1500 episodes
    assert {(c.train.pretrain_epochs, c.train.pretrain_batch, c.train.episodes) for c in cells} \
        == {(8, 64, 1500)}
    assert all(dict(cell.dataset_params) == {"augment": "off"} for cell in cells)


def test_dataset_options_add_to_the_presets_own(tmp_path):
    """`-D` adds to a preset's dataset options, never replaces them (else `--preset mini-cpu -D
    source=csv` would train with augmentation on, under other ids than the committed models)."""
    plain, _ = plan_cells(options_for(["--preset", "mini-cpu"], tmp_path))
    same, _ = plan_cells(options_for(["--preset", "mini-cpu", "-D", "source=auto"], tmp_path))
    assert [c.training_id for c in same] == [c.training_id for c in plain]
    other, _ = plan_cells(options_for(["--preset", "mini-cpu", "-D", "source=csv"], tmp_path))
    assert all(dict(c.dataset_params) == {"augment": "off", "source": "csv"} for c in other)
    on, _ = plan_cells(options_for(["--preset", "mini-cpu", "-D", "augment=on"], tmp_path))
    assert all(dict(c.dataset_params).get("augment", "on") == "on" for c in on)
