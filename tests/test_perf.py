"""`bench perf` on tiny settings: exact columns, machine stamp, equal accuracies, head rows."""

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from bench.cli import perf as cli_perf
from bench.core.config import Cell, MethodSpec
from bench.core.episodes import fixed_episodes
from bench.core.model import build_model
from bench.perf import suite as perf
from bench.perf.evaluation import EvalPlan, episode_gflop, eval_rows
from bench.perf.train_loop import TrainShape, load_plain_loop, train_rows
from bench.perf.train_step import Train84Plan, train84_checks, train84_rows
from bench.perf.trm_head import HeadCase, head_cases, head_rows, measure

CPU = torch.device("cpu")
STAMP = ["host", "cpu", "cores", "threads", "torch", "device", "commit", "dirty", "command",
         "timestamp", "schema_version"]
TINY = perf.PerfSettings(
    eval=EvalPlan(shots=(1,), query=3, counts=(6, 15), per_episode=4, train_episodes=2),
    train=TrainShape(query=3, block=2, blocks=2),
    head=perf.HeadGrid(ways=(2,), shots=(1,), queries=(2,), hws=(4,), max_repeats=2,
                       max_attn_mib=64),
    train84=Train84Plan(methods=("protonet", "cosine", "trm"), way=2, shots=(1, 2), query=2,
                        size=16, precisions=("fp32", "auto"), warmup=1, steps=1),
    train28=Train84Plan(methods=("protonet",), way=2, shots=(1,), query=2, size=28, channels=1,
                        precisions=("fp32",), warmup=1, steps=1),
)
SPECS = [MethodSpec("protonet"), MethodSpec("cosine"), MethodSpec("trm")]


@pytest.fixture(autouse=True)
def one_thread():
    """Correctness, not speed, is tested: one thread avoids OpenMP stalls on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def data(synthetic):
    return perf.PerfData("synthetic", synthetic, synthetic, channels=1)


def test_eval_rows_have_both_modes_and_equal_accuracies(data):
    rows = pd.DataFrame(eval_rows(SPECS, data.train, data.test, 1, "synthetic", TINY.eval, CPU))
    assert list(rows.columns[:6]) == perf.COLUMNS["eval"]
    assert rows.groupby("method")["mode"].apply(list).to_dict() == {
        spec.name: ["per-episode", "cached", "cached"] for spec in SPECS}
    assert rows[rows["mode"] == "cached"]["episodes"].tolist() == [6, 15] * 3
    assert (rows[rows["mode"] == "per-episode"]["episodes"] == 4).all()
    assert rows["acc_matches"].all() and (rows["episodes_per_s"] > 0).all()
    per_episode = rows[rows["mode"] == "per-episode"]
    assert (per_episode["embedded_images"] == 4 * 5 * (1 + 3)).all()
    cached = rows[rows["mode"] == "cached"]
    assert (cached["embedded_images"] <= cached["episodes"] * 5 * 4).all()


def test_episode_flops_match_a_hand_count(synthetic):
    """Conv-64F on 28×28: 4 convolutions; TRM head: projections, attention, the dual softmax's
    column sums, cosine inner products. The counter must see the attention (the CPU's fused
    kernel has no formula)."""
    model = build_model(Cell(MethodSpec("trm"), "synthetic", (), 5, 1, 15, 1, 0), 1).eval()
    episodes = fixed_episodes(synthetic, 5, 1, 15, 1, 0)
    embed, head = episode_gflop(model, synthetic, episodes, CPU)
    per_image = 2 * 9 * 64 * (28 * 28 * 1 + 14 * 14 * 64 + 2 * 7 * 7 * 64)
    assert embed * 1e9 == pytest.approx(80 * per_image)
    hw, rows = 49, 75 * 49
    attention = 2 * 2 * rows * 5 * hw * 64  # scores and weighted sums, every (query, class)
    projections = 2 * 64 * 64 * (rows + 3 * 5 * hw)  # W_q on queries; W_k, W_v, W_o on keys
    inner = 2 * 75 * 5 * hw * 64
    column_sums = 2 * 75 * 5 * hw * hw  # the dual softmax's column normalisers (a product)
    assert head * 1e9 == pytest.approx(attention + projections + inner + column_sums)


def test_flop_account_recovers_the_rates_behind_the_speed_up():
    """E = 2, H = 1 GFLOP per episode; cached episodes embed 1/20 of their images once. With the
    embedding at 100 GFLOP/s and the head at 50, an episode takes 40 ms re-embedded, 21 cached."""
    cached = {"episodes": 10, "way": 5, "shot": 1, "query": 15, "embedded_images": 40,
              "embed_gflop": 2.0, "head_gflop": 1.0, "episodes_per_s": 1 / 0.021}
    per_episode = {"episodes_per_s": 1 / 0.040}
    account = perf.flop_account(per_episode, cached, required=5.0)
    assert account["embed_gflops"] == pytest.approx(100, abs=0.1)
    assert account["head_gflops"] == pytest.approx(50, abs=0.1)
    assert account["flop_speedup"] == pytest.approx(3 / 1.1, abs=0.01)
    needed = account["head_gflops_needed"]  # at this head rate the speed-up is exactly 5
    assert (2 / 100 + 1 / needed) / (1 / needed + 0.05 * 2 / 100) == pytest.approx(5, rel=1e-3)
    assert perf.flop_account(per_episode, {**cached, "embedded_images": 200}, 5.0)[
        "head_gflops_needed"] == math.inf  # a quarter of the images: 5× is out of reach
    assert perf.flop_account(per_episode, {**cached, "head_gflop": 0.0}, 5.0)[
        "head_gflops"] is None


def test_train_rows_time_harness_and_plain_loop(synthetic):
    rows = train_rows(synthetic, 1, TINY.train, CPU)
    assert [row["loop"] for row in rows] == ["harness", "harness-prefetch", "plain", "plain-nchw"]
    assert all(row["method"] == "protonet" and row["episodes_per_s"] > 0 for row in rows)


def test_plain_loop_has_the_harness_backbone_and_loss(synthetic):
    """Same Conv-4 layer by layer; with the same weights, the same ProtoNet logits."""
    plain = load_plain_loop().PlainLoop(synthetic.images, torch.from_numpy(synthetic.labels),
                                        way=5, shot=2, query=3)
    harness = build_model(Cell(MethodSpec("protonet"), "synthetic", (), 5, 2, 3, 1, 0), 1)
    plain_state = plain.model.state_dict()
    harness_state = harness.backbone.state_dict()
    assert [v.shape for v in plain_state.values()] == [v.shape for v in harness_state.values()]
    harness.backbone.load_state_dict(dict(zip(harness_state, plain_state.values())))
    plain.model.eval()
    harness.eval()
    batch = synthetic.images[plain.sample()].float() / 255
    labels = torch.arange(5).repeat_interleave(2)
    with torch.no_grad():
        expected = harness(batch[:10], labels, batch[10:], 5)
        torch.testing.assert_close(plain.logits(batch), expected)


def test_head_rows_measure_time_and_memory_in_a_child_process():
    cases = head_cases((2,), (1,), (2,), (4, 9), 2, 1e12, 64, 1, "cpu", train_ways=(2,))
    rows = pd.DataFrame(head_rows(cases))
    assert list(rows.columns[:8]) == perf.COLUMNS["trm_head"]
    assert rows["status"].tolist() == ["ok"] * 8
    assert set(zip(rows["normalize"], rows["phase"])) == {
        ("dual", "eval"), ("row", "eval"), ("dual", "train"), ("row", "train")}
    assert (rows["ms"] > 0).all() and (rows["peak_mib"] >= 0).all()
    assert rows["within_bound"].all() and (rows["repeats"] == 2).all()


def test_head_cases_repeat_within_the_flop_budget():
    cases = head_cases((5, 20), (1, 5), (15,), (49, 441), 5, 3e11, 2048, 2, "cpu")
    assert len(cases) == 4 * 4 + 4 * 2  # 5-way: 2 phases × 2 normalisations; 20-way: eval
    assert {case.phase for case in cases if case.way == 20} == {"eval"}
    largest = max(cases, key=lambda case: case.way * case.shot * case.hw)
    assert (largest.way, largest.shot, largest.hw, largest.repeats) == (20, 5, 441, 1)
    assert max(case.repeats for case in cases) == 5
    train = [case for case in cases if case.phase == "train" and case.hw == 441]
    assert [case.repeats for case in train if case.shot == 5] == [1, 1]  # 3.5 × 93 GFLOP


def test_head_checks_compare_dual_with_row_in_each_phase():
    rows = [{"way": 5, "shot": shot, "query": 15, "hw": hw, "normalize": normalize,
             "phase": phase, "ms": ms, "peak_mib": 10.0, "within_bound": True, "status": "ok"}
            for shot, hw, phase in [(5, 441, "eval"), (5, 441, "train")]
            for normalize, ms in [("row", 100.0), ("dual", 125.0 if phase == "eval" else 140.0)]]
    checks = pd.DataFrame(perf.head_checks(pd.DataFrame(rows), 2048)).set_index("check")
    assert checks.loc["trm head dual / row time, 5-way 5-shot HW=441, eval", "passed"]
    assert not checks.loc["trm head dual / row time, 5-way 5-shot HW=441, train", "passed"]
    assert checks.loc["trm head peak MiB, 5-way 5-shot HW=441, train", "passed"]


def test_failed_child_is_reported_not_raised():
    row = measure(HeadCase(2, 1, 1, 4, 1, 64, 1, device="nonsense"))
    assert row["status"].startswith("failed") and pd.isna(row["ms"])


def test_full_settings_are_the_issues_grid():
    assert perf.FULL.eval.counts == (600, 10_000) and perf.FULL.eval.shots == (1, 5)
    grid = perf.FULL.head
    assert (grid.ways, grid.shots, grid.queries, grid.hws) == ((5, 20), (1, 5), (15,), (49, 441))
    assert grid.max_attn_mib == 2048


def test_written_csvs_are_stamped_and_checks_computed(data, tmp_path):
    frames = perf.run_perf(data, TINY, SPECS[:1], CPU, threads=1)
    frames["checks"] = perf.checks(frames, TINY.head.max_attn_mib)
    stamp = perf.machine_stamp("cpu", "bench perf --test")
    paths = perf.write_results(frames, tmp_path, stamp)
    assert sorted(path.name for path in paths) == ["checks.csv", "eval.csv", "train.csv",
                                                   "train28.csv", "train84.csv", "trm_head.csv"]
    train28 = pd.read_csv(tmp_path / "train28.csv")
    assert list(train28["image_size"]) == ["28×28"] and train28["gflop_per_step"].gt(0).all()
    for name, first in perf.COLUMNS.items():
        written = pd.read_csv(tmp_path / f"{name}.csv")
        assert list(written.columns[: len(first)]) == first
        assert list(written.columns[-len(STAMP):]) == STAMP
        assert (written["command"] == "bench perf --test").all()
    checks = pd.read_csv(tmp_path / "checks.csv")
    assert any(checks["check"].str.contains("harness / plain"))
    assert checks.loc[checks["check"].str.startswith("equal accuracies"), "passed"].item()


def test_perf_command_prints_tables_and_writes_files(data, tmp_path, monkeypatch):
    monkeypatch.setattr(perf, "QUICK", dataclasses.replace(TINY))
    monkeypatch.setattr(perf, "load_data", lambda *args: data)
    out = tmp_path / "perf"
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)  # keep this process's
    result = CliRunner().invoke(cli_perf.perf_command,
                                ["--quick", "--out", str(out), "--methods", "protonet",
                                 "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "Checks" in result.output and "harness" in result.output
    assert {path.name for path in out.iterdir()} == {"eval.csv", "train.csv", "trm_head.csv",
                                                     "train84.csv", "train28.csv", "checks.csv"}
    assert "28×28 grey" in result.output


def test_perf_tables_fit_80_columns_without_cutting_numbers():
    """The committed reference measurements printed at 80 columns: nothing ellipsized."""
    import io

    import pandas as pd
    from rich.console import Console

    from bench.cli.perf import print_tables

    reference = Path(__file__).parents[1] / "results" / "perf"
    frames = {name: pd.read_csv(reference / f"{name}.csv")
              for name in ("eval", "train", "trm_head", "checks")}
    stamp = {"cpu": "cpu", "cores": 2, "threads": 2, "torch": "2", "device": "cpu",
             "commit": "abc", "dirty": False}
    console = Console(width=80, record=True, file=io.StringIO())
    print_tables(console, frames, stamp)
    text = console.export_text()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "max ep/s" in text and "harness-prefetch" in text



def test_train84_rows_count_every_step_and_compare_with_matmul(monkeypatch):
    """Columns of the issue; protonet's FLOP by hand: Conv-4 forward F, backward F for the weight
    gradients plus F - F1 for the input gradients (none for the images): 3F - F1 per image."""
    from bench.core import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)  # auto: fp32 only
    rows = pd.DataFrame(train84_rows(TINY.train84, CPU))
    assert list(perf.ordered(rows, perf.COLUMNS["train84"]).columns[:8]) == perf.COLUMNS["train84"]
    assert rows[["method", "shot"]].values.tolist() == [
        ["protonet", 1], ["protonet", 2], ["cosine", 1], ["cosine", 2], ["trm", 1], ["trm", 2]]
    assert (rows["precision"] == "fp32").all() and (rows["image_size"] == "16×16").all()
    assert (rows["ms_per_step"] > 0).all() and not rows["bf16_native"].any()
    assert (rows["matmul_gflops"] == rows["matmul_fp32_gflops"]).all()
    layers = [(3, 16), (64, 8), (64, 4), (64, 2)]  # input channels, side, of each 3×3 conv 64
    flop = [2 * 9 * channels * 64 * side * side for channels, side in layers]
    images = 2 * (1 + 2)
    protonet = rows[(rows["method"] == "protonet") & (rows["shot"] == 1)].iloc[0]
    assert protonet["gflop_per_step"] == pytest.approx(images * (3 * sum(flop) - flop[0]) / 1e9,
                                                       rel=1e-3)
    assert protonet["gflops"] == pytest.approx(protonet["gflop_per_step"]
                                               / protonet["ms_per_step"] * 1000, rel=0.05)
    trm = rows[rows["method"] == "trm"].set_index("shot")["gflop_per_step"]
    assert trm[2] > trm[1] > rows[rows["method"] == "cosine"]["gflop_per_step"].iloc[0]
    checks = pd.DataFrame(train84_checks(rows))
    assert len(checks) == 6 + 1 and checks["check"].iloc[-1].startswith("train84 step time trm")


def test_train84_default_times_every_registered_method(monkeypatch):
    """A method added to the registry gets its training-step row without touching the plan
    (every episodic one: baseline and baselinepp have no training step)."""
    from bench.core import precision
    from bench.registry import METHODS

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    plan = dataclasses.replace(TINY.train84, methods=(), shots=(1,), precisions=("fp32",),
                               warmup=0)
    assert Train84Plan().methods == () and perf.FULL.train28.methods == ()
    assert (perf.FULL.train28.size, perf.FULL.train28.channels) == (28, 1)
    rows = train84_rows(plan, CPU)
    episodic = [name for name in METHODS.names() if METHODS.get(name).episodic]
    assert [row["method"] for row in rows] == episodic
    assert "baseline" not in episodic and {"protonet", "ctx", "can"} <= set(episodic)


@pytest.mark.parametrize(("bf16_rate", "timed"), [(0.32, ["fp32"]), (33.0, ["fp32", "bf16"])])
def test_train84_skips_a_precision_the_machine_only_emulates(monkeypatch, bf16_rate, timed):
    """bf16 at 1/268 of fp32's matmul rate (an AVX2-only CPU) is not timed, with a log line;
    at 1/4.3 (an AVX-512 Xeon without BF16) it is: there its steps were 1.5–2.3× slower."""
    from bench.perf import train_step as perf_train84

    monkeypatch.setattr(perf_train84, "matmul_rates",
                        lambda device: {"fp32": 142.0 if bf16_rate > 1 else 86.0,
                                        "bf16": bf16_rate, "size_fp32": 2048,
                                        "size_bf16": 512})
    plan = dataclasses.replace(TINY.train84, methods=("protonet",), shots=(1,),
                               precisions=("fp32", "bf16"), warmup=0, steps=1)
    lines = []
    rows = train84_rows(plan, CPU, lines.append)
    assert [row["precision"] for row in rows] == timed
    assert any("bf16 steps skipped" in line for line in lines) == (timed == ["fp32"])


def test_matmul_size_shrinks_only_a_product_that_would_be_slow():
    """2048² where a product fits the time budget; halved, never below the probe, where not."""
    from bench.perf.evaluation import matmul_size

    assert matmul_size(CPU, torch.float32, size=1024, max_seconds=1e6, probe=64) == 1024
    assert matmul_size(CPU, torch.float32, size=1024, max_seconds=1e-12, probe=64) == 64


def test_short_per_episode_timings_are_repeated_and_the_load_is_recorded(data, monkeypatch):
    """A quick run's 4 episodes take milliseconds: the timing is repeated on the same episodes
    until it lasts a second, and every row says the load average around it and whether it
    exceeded the thread count (a loaded machine's rates are not a speed figure)."""
    from bench.perf import evaluation as perf_eval

    monkeypatch.setattr(perf_eval.os, "getloadavg", lambda: (99.0, 0.0, 0.0))
    rows = pd.DataFrame(eval_rows(SPECS[:1], data.train, data.test, 1, "synthetic", TINY.eval,
                                  CPU))
    per_episode = rows[rows["mode"] == "per-episode"].iloc[0]
    assert per_episode["timed_passes"] > 1 and per_episode["seconds"] >= 1.0
    assert per_episode["episodes_per_s"] == pytest.approx(
        per_episode["timed_passes"] * per_episode["episodes"] / per_episode["seconds"])
    assert (rows["load_avg"] == 99.0).all() and rows["loaded"].all()
