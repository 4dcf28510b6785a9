"""The `bench` command end to end: a smoke run, determinism, skipping, and one-line errors."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main

BENCH = str(Path(sys.executable).parent / "bench")
SMALL = ["--train-episodes", "20", "--test-episodes", "30", "--val-every", "10",
         "--val-episodes", "10", "--train-query", "5", "--query", "5", "-D", "instances=8"]


def bench(*args, cache, check=True):
    env = {**os.environ, "FEWSHOT_BENCH_CACHE": str(cache)}
    result = subprocess.run([BENCH, *args], capture_output=True, text=True, env=env,
                            timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"bench {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def run_main(argv, capsys, monkeypatch, cache):
    monkeypatch.setenv("FEWSHOT_BENCH_CACHE", str(cache))
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr()


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
    (["run", "--methods", "foo"], "unknown method 'foo'; valid methods: cosine, protonet, trm"),
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
])
def test_bad_input_is_one_line_exit_2(argv, message, capsys, monkeypatch, glyph_cache):
    code, captured = run_main(argv, capsys, monkeypatch, glyph_cache)
    assert code == 2
    lines = captured.err.strip().splitlines()
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

    from bench.checkpoint import checkpoint_path
    from bench.cli_run import run_command
    from bench.results import COLUMNS
    from bench.run_plan import plan_cells

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
    cases = [
        (["run", "--dataset", "omniglot", "--data-root", str(corrupt)], "images_background.zip"),
        (["report", str(foreign)], "is not a fewshot-bench results file"),
        (["report", str(newer)], "has results schema 99, newer than"),
        (["run", *args], "was written for another configuration"),
    ]
    for argv, message in cases:
        code, captured = run_main(argv, capsys, monkeypatch, glyph_cache)
        lines = captured.err.strip().splitlines()
        assert (code, len(lines)) == (2, 1), captured.err
        assert message in lines[0], lines[0]


def test_nan_cell_fails_alone_and_is_listed(tmp_path, glyph_cache):
    out = tmp_path / "nan"
    result = bench("run", "--methods", "cosine(temperature=fixed,tau=1e39),protonet", "--shots",
                   "1", *SMALL, "--out", str(out), cache=glyph_cache, check=False)
    assert result.returncode == 1
    assert "failed" in result.stdout and "training loss is" in result.stdout
    assert list(pd.read_csv(out / "results.csv")["method"]) == ["protonet"]
    assert len(list((out / "failures").glob("*.json"))) == 1
