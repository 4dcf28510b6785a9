"""The `bench` command end to end: a smoke run, determinism, skipping, and one-line errors."""

import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from helpers import run_main, without_progress

BENCH = str(Path(sys.executable).parent / "bench")
EXAMPLE = Path(__file__).parent / "data" / "example_results"
SMALL = ["--train-episodes", "20", "--test-episodes", "30", "--val-every", "10",
         "--val-episodes", "10", "--train-query", "5", "--query", "5", "-D", "instances=8"]
TINY = ["--train-episodes", "2", "--val-every", "0", "--test-episodes", "30", "--train-query",
        "5", "--query", "5", "-D", "instances=8", "--threads", "1"]


def bench(*args, cache, check=True):
    env = {**os.environ, "FEWSHOT_BENCH_CACHE": str(cache)}
    result = subprocess.run([BENCH, *args], capture_output=True, text=True, env=env,
                            timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"bench {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def test_smoke_run_writes_results_and_is_deterministic(tmp_path, glyph_cache):
    first, second = tmp_path / "a", tmp_path / "b"
    args = ["run", "--methods", "protonet,trm", "--shots", "1", *SMALL]
    out = bench(*args, "--out", str(first), cache=glyph_cache)
    assert "protonet" in out.stdout and "trm" in out.stdout
    bench(*args, "--out", str(second), "--seed", "1,0", cache=glyph_cache)
    a = pd.read_csv(first / "results.csv")
    both = pd.read_csv(second / "results.csv")
    b, c = both[both["seed"] == 0], both[both["seed"] == 1]
    assert list(a["method"]) == ["protonet", "trm"] == list(b["method"])
    assert list(a["acc"]) == list(b["acc"]) and list(a["episodes_hash"]) == list(
        b["episodes_hash"])
    assert set(a["episodes_hash"]).isdisjoint(set(c["episodes_hash"]))
    assert a["episodes_hash"].nunique() == 1  # both methods on the same episodes
    required = ["method", "dataset", "backbone", "way", "shot", "query", "test_episodes", "acc",
                "ci95", "seed", "train_episodes", "train_seconds", "eval_seconds",
                "episodes_hash", "commit", "timestamp"]
    assert set(required) <= set(a.columns)
    for cell_id in a["cell_id"]:
        assert (first / "per_episode" / f"{cell_id}.npy").exists()
        assert (first / "configs" / f"{cell_id}.json").exists()
        assert (first / "logs" / f"{cell_id}.csv").exists()
    rerun = bench(*args, "--out", str(first), cache=glyph_cache)
    assert "2 already finished" in rerun.stdout
    assert len(pd.read_csv(first / "results.csv")) == 2


def test_trained_model_is_shared_between_test_ways(tmp_path, glyph_cache):
    out = tmp_path / "ways"
    bench("run", "--methods", "protonet", "--shots", "1", "--ways", "5,10", "--train-way", "5",
          *SMALL,
          "--out", str(out), cache=glyph_cache)
    frame = pd.read_csv(out / "results.csv")
    assert list(frame["way"]) == [5, 10]
    assert len(list((out / "models").glob("*.pt"))) == 1


@pytest.mark.parametrize("argv, message", [
    (["run", "--methods", "foo"],
     "unknown method 'foo'; valid methods: baseline, baselinepp, can, cosine"),
    (["run", "--methods", ""], "--methods is empty"),
    (["run", "--methods", " , "], "--methods is empty"),
    (["run", "--dataset", "imagenet"], "unknown dataset 'imagenet'; valid datasets:"),
    (["run", "--methods", "trm(heads=4)"], "unknown parameter 'heads' for method trm"),
    (["run", "-D", "colour=red"], "unknown parameter 'colour' for dataset glyphs"),
    (["run", "--shots", "0"], "--shots must be positive integers, got 0"),
    (["run", "--shots", "-1"], "--shots must be positive integers, got -1"),
    (["run", "--ways", "five"], "--ways 'five' is not an integer"),
    (["run", "--test-episodes", "0"], "--test-episodes must be positive, got 0"),
    (["run", "--train-episodes", "many"], "--train-episodes 'many' is not an integer"),
    (["run", "--seed", "x"], "--seed 'x' is not an integer"),
    (["run", "--precision", "fp16"],
     "--precision 'fp16' is not valid; valid values: auto, fp32, bf16"),
    (["run", "--prefetch", "-2"], "--prefetch must be ≥ 0, got -2"),
    (["run", "--ways", "100000", *SMALL], "way=100000 is more than the"),
    (["run", *SMALL, "--shots", "5", "--query", "15"], "shot+query=5+15 is more than the 8"),
    (["run", "--dataset", "omniglot", "--data-root", "/nonexistent/dir"], "omniglot"),
    (["report", "/nonexistent/results.csv"], "does not exist"),
    (["run", "--methods", "protonet", "--out", "/proc/forbidden"], "not writable"),
    # each a one-line error that names what is valid: never a traceback, a crash, a silent
    # oddity or a misleading message
    (["run", "--device", "nonsense"], "--device 'nonsense' is not supported; use cpu, cuda"),
    (["run", "--device", "mps"], "--device 'mps' is not supported; use cpu, cuda"),
    (["run", "--threads", "-2"], "--threads must be between 1 and"),
    (["run", "--threads", "10000"], "--threads must be between 1 and"),
    (["run", "--seed", "99999999999999999999999"], "--seed must be at most 4294967295"),
    (["run", "--seed", "-1"], "--seed must be integers ≥ 0, got -1"),
    (["perf", "--device", "mps"], "--device 'mps' is not supported"),
    (["perf", "--threads", "10000"], "--threads must be between 1 and"),
    (["perf", "--out", ""], "--out is empty"),
    (["run", "--out", ""], "--out is empty; pass --out DIR"),
    (["run", "--out", "  "], "--out is empty; pass --out DIR"),
    (["run", "--ways", "1"], "--ways must be at least 2 (a 1-way task is always 100% correct)"),
    (["run", "--train-way", "1"], "--train-way must be at least 2"),
    (["run", "--test-episodes", "1"], "--test-episodes must be at least 2 (a 95% CI needs two"),
    (["run", "--train-way", "1000", *SMALL], "use --train-way"),
    (["run", "--methods", "cosine(temperature=foo)"],
     "parameter temperature='foo' is not valid; valid values: learned, fixed"),
    (["run", "--methods", "cosine(tau=nan)"], "tau=nan must be a positive finite number"),
    (["run", "--methods", "cosine(tau=0)"], "tau=0.0 must be a positive finite number"),
    (["run", "--methods", "cosine(tau=-1)"], "tau=-1.0 must be a positive finite number"),
    (["run", "--methods", "cosine(tau=inf)"], "tau=inf must be a positive finite number"),
])
def test_bad_input_is_one_line_exit_2(argv, message, capsys, monkeypatch, glyph_cache):
    code, captured = run_main(argv, capsys, monkeypatch, glyph_cache)
    assert code == 2
    lines = without_progress(captured.err)
    assert len(lines) == 1, captured.err
    assert message in lines[0]
    assert "Traceback" not in captured.err


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_bad_files_are_one_line_exit_2(tmp_path, capsys, monkeypatch, glyph_cache):
    """Corrupt data, foreign or newer results files, and a checkpoint of another configuration."""
    import torch

    from bench.cli.run import run_command
    from bench.core.models import checkpoint_path
    from bench.plan.cells import plan_cells
    from bench.results import COLUMNS

    corrupt = tmp_path / "omniglot"
    for part in ("images_background", "images_evaluation"):
        _write(corrupt / f"{part}.zip", "this is not a zip file")
    foreign = _write(tmp_path / "foreign.csv", "a,b\n1,2\n")
    newer = tmp_path / "newer"
    row = {column: "" for column in COLUMNS} | {"cell_id": "x", "schema_version": "99"}
    _write(newer / "results.csv", ",".join(COLUMNS) + "\n" + ",".join(row.values()) + "\n")
    out = tmp_path / "stale"
    args = ["--methods", "protonet", "--shots", "1", *SMALL, "--out", str(out)]
    options = dict(run_command.make_context("run", list(args)).params)
    options.pop("preset")
    cell = plan_cells(options)[0][0]
    checkpoint_path(out, cell).parent.mkdir(parents=True)
    torch.save({"config": {"method": "another"}}, checkpoint_path(out, cell))
    archive = tmp_path / "images_background.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("a/b.png", bytes(range(256)) * 4000)
    damaged = tmp_path / "damaged"
    shutil.copytree(EXAMPLE, damaged)
    with open(damaged / "results.csv", "a") as results_file:
        results_file.write("xx,yy\n")
    bad_line = len((damaged / "results.csv").read_text().splitlines())
    damage = f"results.csv line {bad_line} is damaged (2 fields, the header has 31): 'xx,yy'"
    cases = [
        (["run", "--dataset", "omniglot", "--data-root", str(corrupt)], "images_background.zip"),
        (["report", str(foreign)], "is not a fewshot-bench results file"),
        (["report", str(newer)], "has results schema 99, newer than"),
        (["run", *args], "was written for another configuration"),
        (["report", str(archive)], "is not a fewshot-bench results file (not text)"),
        (["report", str(damaged)], damage),
        (["check", "--baseline", str(damaged / "results.csv"), "--results", str(EXAMPLE)],
         damage),
        (["check", "--baseline", str(EXAMPLE / "results.csv"), "--results", str(damaged)],
         damage),
        (["run", *args[:-1], str(damaged)], damage),
    ]
    for argv, message in cases:
        code, captured = run_main(argv, capsys, monkeypatch, glyph_cache)
        # stderr also carries progress (a cache being built); the error is its one last line
        lines = captured.err.strip().splitlines()
        errors = [line for line in lines if line.startswith("error:")]
        assert (code, len(errors)) == (2, 1) and errors[0] == lines[-1], captured.err
        assert message in lines[-1], lines[-1]
        assert len(lines[-1]) < 1000


def test_nan_cell_fails_alone_and_is_listed(tmp_path, glyph_cache):
    out = tmp_path / "nan"
    result = bench("run", "--methods", "cosine(temperature=fixed,tau=1e39),protonet", "--shots",
                   "1", *SMALL, "--out", str(out), cache=glyph_cache, check=False)
    assert result.returncode == 1
    assert "failed" in result.stdout and "training loss is" in result.stdout
    assert list(pd.read_csv(out / "results.csv")["method"]) == ["protonet"]
    assert len(list((out / "failures").glob("*.json"))) == 1


def test_every_cell_failing_reports_the_failures(tmp_path, capsys, monkeypatch, glyph_cache):
    """Not "results file ... does not exist": the NaN loss, as when other cells succeed."""
    out = tmp_path / "all-nan"
    code, captured = run_main(["run", "--methods", "cosine(temperature=fixed,tau=1e39)",
                               "--shots", "1", *TINY, "--out", str(out)],
                              capsys, monkeypatch, glyph_cache)
    assert code == 1, captured.err
    assert "does not exist" not in captured.err and "Traceback" not in captured.err
    assert "0 cells run" in captured.out and "1 failed" in captured.out
    assert "failed: cosine(temperature=fixed,tau=1e39)" in captured.out
    assert "training loss is" in captured.out


def test_finished_cells_measured_on_other_files_are_not_reused(tmp_path, capsys, monkeypatch,
                                                               glyph_cache):
    """A finished cell whose stored episodes_hash is not what the data gives now (another
    --data-root with other files) is an error naming the fix, not "1 already finished"."""
    out = tmp_path / "moved"
    args = ["run", "--methods", "protonet", "--shots", "1", *TINY, "--out", str(out)]
    assert run_main(args, capsys, monkeypatch, glyph_cache)[0] == 0
    frame = pd.read_csv(out / "results.csv")
    good = frame["episodes_hash"].iloc[0]
    frame.assign(episodes_hash="0123456789abcdef").to_csv(out / "results.csv", index=False)
    code, captured = run_main(args, capsys, monkeypatch, glyph_cache)
    assert code == 2
    assert "measured on other files of glyphs than these (episodes_hash 0123456789abcdef, " \
           f"now {good}); pass another --out, or --force to redo it" in captured.err
    assert run_main([*args, "--force"], capsys, monkeypatch, glyph_cache)[0] == 0
    assert list(pd.read_csv(out / "results.csv")["episodes_hash"]) == [good]


def test_finished_cells_trained_on_other_files_are_not_reused(tmp_path, capsys, monkeypatch,
                                                              glyph_cache):
    """The same for the training split: a finished cell whose stored train_data (the training
    split's fingerprint) is not what the data gives now is refused; a row written before the
    column existed (empty) is reused, as before."""
    out = tmp_path / "retrained"
    args = ["run", "--methods", "protonet", "--shots", "1", *TINY, "--out", str(out)]
    assert run_main(args, capsys, monkeypatch, glyph_cache)[0] == 0
    frame = pd.read_csv(out / "results.csv", dtype={"train_data": str})
    good = frame["train_data"].iloc[0]
    assert isinstance(good, str) and len(good) == 16
    frame.assign(train_data="fedcba9876543210").to_csv(out / "results.csv", index=False)
    code, captured = run_main(args, capsys, monkeypatch, glyph_cache)
    assert code == 2 and "Traceback" not in captured.err
    assert "trained on other training files of glyphs than these (train_data " \
           f"fedcba9876543210, now {good}); pass another --out, or --force to redo it" \
           in captured.err
    frame.assign(train_data="").to_csv(out / "results.csv", index=False)
    code, captured = run_main(args, capsys, monkeypatch, glyph_cache)
    assert code == 0 and "1 already finished" in captured.out, captured.out


def test_bench_alone_prints_its_help(capsys, monkeypatch, glyph_cache):
    code, captured = run_main([], capsys, monkeypatch, glyph_cache)
    assert code == 0 and captured.err == ""
    assert captured.out.startswith("Usage: bench") and "error" not in captured.out


def test_run_help_documents_every_option_and_preset():
    from bench.cli.run import run_command
    from bench.plan.presets import PRESETS

    undocumented = [param.name for param in run_command.params if not param.help]
    assert undocumented == []
    preset = next(param for param in run_command.params if param.name == "preset")
    assert all(name in preset.help for name in PRESETS)


def test_summary_table_fits_80_columns_one_line_per_seed():
    from rich.console import Console

    from bench.cli.run_summary import summary_tables
    from bench.results import load

    frame = load(EXAMPLE).assign(method=lambda f: f["method"] + " [train.shot=5]")
    console = Console(width=80, record=True, file=io.StringIO())
    for table in summary_tables(frame):
        console.print(table)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "one line per training run (seed)" in text
    assert re.search(r"^ +1 +52\.79 ± 1\.91", text, re.M)  # each seed's line carries its seed
    assert "trm [train.shot=5]" in text  # brackets are not eaten as markup
    for row in frame.itertuples():  # every seed's number whole, never cut
        assert f"{row.acc:.2f} ± {row.ci95:.2f}" in text


def test_summary_train_time_counts_a_shared_model_once():
    """A 1-shot model tested at 1- and 5-shot is one training: its seconds count once; two
    trainings (one per shot) count twice."""
    import pandas as pd

    from bench.cli.run_summary import training_seconds

    shared = pd.DataFrame({"seed": [0, 0], "train_way": [5, 5], "train_shot": [1, 1],
                           "train_query": [15, 15], "train_episodes": [1500, 1500],
                           "train_seconds": [1234.0, 1234.0], "shot": [1, 5]})
    assert training_seconds(shared) == 1234.0
    assert training_seconds(shared.assign(train_shot=[1, 5], train_seconds=[100.0, 300.0])) \
        == 400.0
