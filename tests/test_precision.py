"""`--precision auto`: bf16 only where the device computes it natively, resolved before cells."""

import pandas as pd
import pytest

from bench.cli import main
from bench.core import precision
from bench.errors import BenchError

SMALL = ["--methods", "protonet", "--shots", "1", "--train-episodes", "3", "--test-episodes",
         "5", "--val-every", "0", "--train-query", "2", "--query", "2", "-D", "instances=8"]


@pytest.mark.parametrize("native, resolved", [(True, "bf16"), (False, "fp32")])
def test_auto_follows_the_detection(monkeypatch, native, resolved):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert precision.resolve_precision("auto", "cpu") == resolved
    assert precision.resolve_precision("fp32", "cpu") == "fp32"
    assert precision.resolve_precision("bf16", "cpu") == "bf16"  # asked for: given, even if slow


def test_invalid_precision_names_the_choices():
    with pytest.raises(BenchError, match="'fp16' is not valid; valid values: auto, fp32, bf16"):
        precision.resolve_precision("fp16", "cpu")


def test_cpu_flags_decide_native_bf16(monkeypatch):
    for flags, expected in ((set(), False), ({"avx512f", "avx2"}, False),
                            ({"avx512f", "avx512_bf16"}, True), ({"amx_bf16", "amx_tile"}, True)):
        monkeypatch.setattr(precision, "cpu_flags", lambda flags=flags: frozenset(flags or {"fpu"}))
        assert precision.cpu_has_native_bf16() is expected


def test_cuda_without_a_gpu_is_not_native(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert precision.native_bf16("cuda:0") is False


@pytest.mark.parametrize("native, resolved", [(False, "fp32"), (True, "bf16")])
def test_run_without_precision_trains_as_detected(tmp_path, glyph_cache, capsys, monkeypatch,
                                                  native, resolved):
    """On a CPU reported as without native bf16, `bench run` without --precision trains in fp32:
    the results row, the stored configuration and the training id all say so."""
    import bench.train.runner

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setenv("FEWSHOT_BENCH_CACHE", str(glyph_cache))
    used = []
    step = bench.train.runner.train_step
    monkeypatch.setattr(bench.train.runner, "train_step",
                        lambda *args, **kwargs: used.append(args[7]) or step(*args, **kwargs))
    with pytest.raises(SystemExit) as exit_info:
        main(["run", *SMALL, "--out", str(tmp_path), "--threads", "1"])
    assert exit_info.value.code == 0, capsys.readouterr()
    row = pd.read_csv(tmp_path / "results.csv").iloc[0]
    assert row["precision"] == resolved and "auto" not in row["config"]
    assert ('"precision": "bf16"' in row["config"]) is (resolved == "bf16")
    assert used == [resolved] * 3
