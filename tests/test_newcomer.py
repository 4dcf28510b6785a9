"""What a new user hits: one-line errors (exit 2, no traceback) for paths and sizes that cannot
work."""

import pytest
from helpers import run_main as run
from helpers import without_progress


@pytest.mark.parametrize("where", ["file", "/proc/figs"])
def test_plots_where_no_figure_can_go_is_one_line_before_any_table(tmp_path, capsys, monkeypatch,
                                                                   where):
    from pathlib import Path

    example = Path(__file__).parent / "data" / "example_results"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = str(blocker / "figs") if where == "file" else where
    code, captured = run(["report", str(example), "--plots", target], capsys, monkeypatch,
                         tmp_path)
    assert code == 2
    assert captured.err.startswith(f"error: cannot write figures to {target}")
    assert captured.err.count("\n") == 1 and captured.out == ""


def test_a_model_too_large_to_allocate_is_one_line(tmp_path, capsys, monkeypatch, glyph_cache):
    code, captured = run(["run", "--methods", "relationnet(loss=ce,hidden=1000000000000)",
                          "--shots", "1", "--train-episodes", "1", "--test-episodes", "2",
                          "--threads", "1", "-D", "instances=8", "--query", "5",
                          "--train-query", "5",
                          "--out", str(tmp_path)],
                         capsys, monkeypatch, glyph_cache)
    assert code == 2
    assert "relationnet(loss=ce,hidden=1000000000000) cannot be built on this machine" in \
        captured.err
    assert len(without_progress(captured.err)) == 1


def test_dry_run_plans_estimates_and_trains_nothing(tmp_path, capsys, monkeypatch, glyph_cache):
    tiny = ["--methods", "protonet", "--shots", "1", "--ways", "5,20", "--train-way", "5",
            "--train-episodes", "3",
            "--val-every", "0", "--test-episodes", "4", "--query", "3", "--train-query", "3",
            "-D", "instances=8", "--threads", "1", "--out", str(tmp_path)]
    code, captured = run(["run", *tiny, "--dry-run"], capsys, monkeypatch, glyph_cache)
    assert code == 0, captured.err
    assert "2 cells in" in captured.out
    assert "protonet glyphs 5-way 1-shot seed 0: train 3 episodes (model shared by 2 cells)" \
        in captured.out
    assert "20-way 1-shot seed 0: evaluate the model trained for a cell above" in captured.out
    assert "estimated time: unknown" in captured.out
    assert not (tmp_path / "results.csv").exists() and not (tmp_path / "models").exists()
    assert run(["run", *tiny, "--ways", "5"], capsys, monkeypatch, glyph_cache)[0] == 0
    code, captured = run(["run", *tiny, "--dry-run"], capsys, monkeypatch, glyph_cache)
    assert "5-way 1-shot seed 0: finished (skipped)" in captured.out
    assert "20-way 1-shot seed 0: evaluate the stored model" in captured.out
    assert "estimated time: " in captured.out and "from the cells" in captured.out


def test_dry_run_of_a_preset_shows_what_it_sets(tmp_path, capsys, monkeypatch):
    code, captured = run(["run", "--preset", "mini-fair", "--data-root", str(tmp_path),
                          "--out", str(tmp_path / "out"), "--dry-run"], capsys, monkeypatch,
                         tmp_path)
    assert code == 0, captured.err
    assert "preset settings" in captured.out and "plateau_window = 1500" in captured.out
    assert "18 cells in" in captured.out and "or fewer: stops once validation rose" in \
        captured.out


def test_dry_run_says_a_method_without_episodic_training_trains_no_episodes(tmp_path, capsys,
                                                                          monkeypatch):
    code, captured = run(["run", "--preset", "mini-fair", "--data-root", str(tmp_path),
                          "--methods", "baseline,protonet", "--shots", "5", "--seed", "0",
                          "--out", str(tmp_path / "out"), "--dry-run"], capsys, monkeypatch,
                         tmp_path)
    assert code == 0, captured.err
    assert "baseline mini-imagenet 5-way 5-shot seed 0: no episodic training (the pre-trained " \
        "backbone is its model)\n" in captured.out
    assert "protonet mini-imagenet 5-way 5-shot seed 0: train 4000 episodes, or fewer" in \
        captured.out


@pytest.mark.parametrize("dataset", ["cub", "mini-imagenet", "omniglot"])
def test_a_data_root_that_does_not_exist_is_called_so(tmp_path, capsys, monkeypatch, dataset):
    code, captured = run(["run", "--dataset", dataset, "--data-root", str(tmp_path / "nowhere"),
                          "--out", str(tmp_path / "out")], capsys, monkeypatch, tmp_path)
    assert code == 2
    assert f"the data root {tmp_path / 'nowhere'} of {dataset} does not exist" in captured.err


def test_perf_offers_the_download_its_message_suggests():
    from bench.cli.perf import perf_command

    assert "download" in {param.name for param in perf_command.params}


def test_tensorboard_event_files_read_back(tmp_path, capsys, monkeypatch, glyph_cache):
    pytest.importorskip("tensorboard", reason="pip install 'fewshot-bench[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = tmp_path / "tb"
    code, captured = run(["run", "--methods", "protonet", "--shots", "1", "--train-episodes",
                          "20", "--val-every", "10", "--val-episodes", "4", "--test-episodes",
                          "4", "--query", "3", "--train-query", "3", "-D", "instances=8",
                          "--threads", "1", "--out", str(tmp_path / "out"), "--tensorboard",
                          str(board)], capsys, monkeypatch, glyph_cache)
    assert code == 0, captured.err
    (run_dir,) = board.iterdir()
    assert run_dir.name.startswith("protonet_glyphs_5-way_1-shot_seed_0-")
    events = EventAccumulator(str(run_dir))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"loss", "train_acc", "val_acc", "lr", "test_acc"} <= set(scalars)
    assert [event.step for event in events.Scalars("loss")] == list(range(1, 21))
    assert [event.step for event in events.Scalars("val_acc")] == [10, 20]
    assert all(0 <= event.value <= 100 for event in events.Scalars("train_acc"))


def test_tensorboard_missing_is_one_line_naming_the_install(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_tensorboard(name, *args, **kwargs):
        if name.startswith("tensorboard") or name == "torch.utils.tensorboard":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_tensorboard)
    code, captured = run(["run", "--methods", "protonet", "--out", str(tmp_path / "out"),
                          "--tensorboard", str(tmp_path / "tb")], capsys, monkeypatch, tmp_path)
    assert code == 2
    assert "pip install 'fewshot-bench[tensorboard]'" in captured.err
    assert captured.err.count("\n") == 1
