"""The budget rule (--plateau-window / --plateau-delta): training stops once the best validation
accuracy has stopped rising; --train-episodes is the cap."""

import math
from types import SimpleNamespace

import pytest
from helpers import load_script

from bench.core.config import Cell, MethodSpec, TrainConfig
from bench.errors import BenchError
from bench.train.runner import final_rate_from, plateaued


def log(*validations, every=100):
    """A training log with a validation every ``every`` episodes (accuracies as fractions)."""
    entries = []
    for index, accuracy in enumerate(validations, start=1):
        for episode in range((index - 1) * every + 1, index * every + 1):
            entries.append({"episode": episode, "val_acc": accuracy if episode == index * every
                            else math.nan})
    return entries


RULE = SimpleNamespace(plateau_window=200, plateau_delta=0.5)


def test_stops_when_the_best_rose_by_at_most_delta_over_the_window():
    assert not plateaued(log(0.40, 0.45), RULE)  # a window has not passed since the first
    assert not plateaued(log(0.40, 0.45, 0.50), RULE)  # best 50.0 vs 40.0 at episode 100
    assert plateaued(log(0.40, 0.50, 0.502, 0.503), RULE)  # 50.3 vs 50.0 at episode 200
    assert plateaued(log(0.40, 0.50, 0.49, 0.48), RULE)  # falling: best 50.0 vs 50.0
    assert not plateaued(log(0.40, 0.50, 0.49, 0.56), RULE)  # a late rise keeps it going


def test_never_before_a_window_at_the_final_learning_rate():
    """mini-fair's protonet: flat from episode 500, stopped at 2000, where the rate halves, so it
    never trained at the lower rate that lifted cosine and trm by 4-5 validation points. With a
    step schedule the window must lie after the last decay before the cap."""
    flat = log(*[0.60] * 40)  # 4000 episodes, flat
    schedule = dict(plateau_window=1500, plateau_delta=0.5, lr_step=2000, lr_gamma=0.5)
    rule = SimpleNamespace(episodes=4000, **schedule)
    assert final_rate_from(rule) == 2000
    assert not any(plateaued(flat[:end], rule) for end in range(1500, 3500, 100))
    assert plateaued(flat[:3500], rule)
    assert final_rate_from(SimpleNamespace(episodes=2000, **schedule)) == 0  # no decay before
    assert final_rate_from(SimpleNamespace(episodes=2001, **schedule)) == 2000  # the cap
    assert final_rate_from(SimpleNamespace(episodes=20000, **schedule)) == 18000
    assert final_rate_from(SimpleNamespace(episodes=4000, **{**schedule, "lr_gamma": 1.0})) == 0
    assert final_rate_from(SimpleNamespace(episodes=4000, **{**schedule, "lr_step": 0})) == 0
    assert plateaued(flat[:2000], SimpleNamespace(episodes=4000, **{**schedule, "lr_step": 0}))


def test_only_at_a_validation_and_never_when_off():
    entries = log(0.40, 0.50, 0.502, 0.503)
    assert not plateaued(entries + [{"episode": 401, "val_acc": math.nan}], RULE)
    assert not plateaued(entries, SimpleNamespace(plateau_window=0, plateau_delta=0.5))


def test_rule_is_part_of_the_training_id_only_when_on():
    plain = Cell(MethodSpec("protonet"), "glyphs", (), 5, 1, 15, 10, 0, TrainConfig())
    ruled = Cell(MethodSpec("protonet"), "glyphs", (), 5, 1, 15, 10, 0,
                 TrainConfig(plateau_window=500))
    assert "plateau_window" not in plain.training()["train"]
    assert ruled.training()["train"]["plateau_window"] == 500
    assert plain.training_id != ruled.training_id


@pytest.mark.parametrize("config, message", [
    (TrainConfig(plateau_window=-1), "--plateau-window must be ≥ 0"),
    (TrainConfig(plateau_delta=-0.1), "--plateau-delta must be ≥ 0"),
    (TrainConfig(plateau_window=100, val_every=0), "set --val-every"),
])
def test_bad_rules_are_one_line_errors(config, message):
    with pytest.raises(BenchError, match=message):
        config.validate()


def test_a_run_stops_at_the_plateau_and_finishes(tmp_path, capsys, monkeypatch, glyph_cache):
    import pandas as pd

    from bench.cli import main

    monkeypatch.setenv("FEWSHOT_BENCH_CACHE", str(glyph_cache))
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--methods", "protonet", "--shots", "1", "--train-episodes", "400",
              "--val-every", "20", "--val-episodes", "10", "--plateau-window", "40",
              "--plateau-delta", "100", "--test-episodes", "10", "--train-query", "5",
              "--query", "5", "-D", "instances=8", "--threads", "1", "--out", str(tmp_path)])
    assert exit_info.value.code == 0, capsys.readouterr().err
    row = pd.read_csv(tmp_path / "results.csv").iloc[0]
    training_log = pd.read_csv(tmp_path / "logs" / f"{row['cell_id']}.csv")
    # 100 points of slack: stops at the first validation with one a window before it (20)
    assert training_log["episode"].max() == 60
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_the_pilot_replays_the_rule_with_sparser_validation():
    """benchmarks/budget_rule_pilot.py --val-every: the same log validated half as often can stop
    earlier and keep other weights (mini-fair's cosine: its 500-multiples never rose)."""
    pilot = load_script("benchmarks/budget_rule_pilot.py")
    entries = log(0.40, 0.45, 0.50, 0.45, 0.55, 0.45, 0.40, 0.40)  # every 100 episodes
    assert pilot.stopping(entries, RULE) == (700, [(100, 0.40), (200, 0.45), (300, 0.50),
                                                   (400, 0.45), (500, 0.55), (600, 0.45),
                                                   (700, 0.40)])
    sparse = pilot.sparser(entries, 200, cap=800)
    assert [entry["episode"] for entry in sparse] == [200, 400, 600, 800]
    assert [entry["episode"] for entry in pilot.sparser(entries, 300, cap=800)] == [300, 600, 800]
    with pytest.raises(SystemExit, match="needs a logged validation at episode 150"):
        pilot.sparser(entries, 150, cap=800)
    assert pilot.stopping(sparse, RULE) == (400, [(200, 0.45), (400, 0.45)])
    assert pilot.best([(200, 0.45), (400, 0.45)]) == (200, 0.45)  # the earliest of equals
    dense = log(0.40, 0.45, 0.50, 0.55)
    assert pilot.stopping(dense, RULE) == (None, [(100, 0.40), (200, 0.45), (300, 0.50),
                                                  (400, 0.55)])


def test_the_pilot_counts_the_steps_run_at_a_decayed_learning_rate():
    """mini-fair's protonet stopped at episode 2000, the step whose scheduler step halved the
    rate: none of its steps ran at the lower rate. The log records the rate after each step."""
    pilot = load_script("benchmarks/budget_rule_pilot.py")
    entries = [{"episode": e, "val_acc": float("nan"), "lr": 1e-3 if e < 4 else 5e-4}
               for e in range(1, 9)]
    assert pilot.decayed_steps(entries, 4) == 0  # stopped at the decay: step 4 ran at 1e-3
    assert pilot.decayed_steps(entries, 5) == 1
    assert pilot.decayed_steps(entries, 8) == 4
    assert pilot.decayed_steps([{"episode": 1, "val_acc": 0.5}], 1) == 0  # a log without rates


@pytest.mark.parametrize("preset, first_stop", [("mini-fair", 3500), ("cub-fair", 5500)])
def test_the_fair_presets_give_every_method_the_whole_schedule(preset, first_stop):
    """What the presets' docs say: the rule cannot stop a mini-fair training before 3500, a
    cub-fair one before 5500 (the rate halves every 2000 up to caps of 4000 and 6000)."""
    from bench.plan.presets import PRESETS
    options = PRESETS[preset]["options"]
    rule = SimpleNamespace(episodes=int(options["train_episodes"]), lr_step=options["lr_step"],
                           lr_gamma=options["lr_gamma"], plateau_window=options["plateau_window"],
                           plateau_delta=options["plateau_delta"])
    assert final_rate_from(rule) + rule.plateau_window == first_stop
    flat = log(*[0.6] * (rule.episodes // 250), every=250)
    stops = [end for end in range(250, rule.episodes + 1, 250) if plateaued(flat[:end], rule)]
    assert stops[0] == first_stop
    assert f"not before {first_stop}" in PRESETS[preset]["about"]
