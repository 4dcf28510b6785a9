"""Training runs as a source of variance: seed-level tables, paired tests over seeds, bold only
over runs, the variance table, `--power`, `--test-seed`, and `bench check` over runs.

The synthetic results folders are built here the way `bench run` writes them (a results row and a
per-episode file per cell), with every seed tested on one episode set (one episodes_hash)."""

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from helpers import run_main
from scipy import stats as scipy_stats

from bench import results, stats
from bench.cli import main
from bench.errors import BenchError
from bench.report import check, tables
from bench.report.compare import compare
from bench.report.rows import with_episodes
from bench.report.summary import summarize

EPISODES = 1000
HASH = "0123456789abcdef"
TINY = ["--train-episodes", "2", "--val-every", "0", "--test-episodes", "30", "--train-query",
        "5", "--query", "5", "-D", "instances=8", "--threads", "1"]


def write_cell(out, method, seed, accuracies, shot=1, episodes_hash=HASH, backbone="conv4"):
    cell_id = f"{method}-{backbone}-{shot}-{seed}-{episodes_hash[:4]}".replace("(", "").replace(
        ")", "")
    results.save_per_episode(out, cell_id, accuracies)
    acc, ci95 = stats.mean_ci(accuracies)
    row = {column: "" for column in results.COLUMNS}
    row.update(method=method, dataset="synthetic", split="test", backbone=backbone, way=5,
               shot=shot, query=15, test_episodes=accuracies.size, acc=100 * acc,
               ci95=100 * ci95, ci_method="normal", seed=seed, test_seed=0,
               train_dataset="synthetic", episodes_hash=episodes_hash, cell_id=cell_id,
               schema_version=results.SCHEMA_VERSION,
               config=json.dumps({"method": method, "seed": seed, "way": 5, "shot": shot}))
    results.append_row(out, row)


def study(out, shifts: dict, seeds=range(6), noise=0.01, shot=1):
    """Method "b" scores base episodes; every other method scores base + shift[s] points at
    seed s (plus small per-episode noise), so each seed's episode-level test is decisive."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.7, EPISODES)
    for seed in seeds:
        write_cell(out, "b", seed, np.clip(base + rng.normal(0, noise, EPISODES), 0, 1), shot)
        for method, shift in shifts.items():
            if seed in shift:
                accuracies = base + shift[seed] / 100 + rng.normal(0, noise, EPISODES)
                write_cell(out, method, seed, accuracies, shot)
    return results.load(out)


@pytest.fixture
def disagreeing(tmp_path):
    """Seeds split in sign: +3.2 / −3 points, each seed's episode test p < 1e-9."""
    return study(tmp_path, {"a": {s: 3.2 if s % 2 == 0 else -3.0 for s in range(6)}})


@pytest.fixture
def agreeing(tmp_path):
    """Six seeds that agree: +0.8 .. +1.3 points."""
    return study(tmp_path, {"a": dict(enumerate([0.8, 1.0, 1.3, 0.9, 1.1, 1.2]))})


def test_every_seed_is_decisive_within_its_run_yet_nothing_holds_over_seeds(disagreeing):
    frame = with_episodes(disagreeing)
    for seed in range(6):
        rows = frame[frame["seed"] == seed].set_index("method")["episodes"]
        assert scipy_stats.ttest_rel(rows["a"], rows["b"]).pvalue < 1e-9
    summary = summarize(disagreeing).set_index("method")
    assert summary.loc["a", "acc"] > summary.loc["b", "acc"]  # ahead on average
    assert not summary["bold"].any() and not summary["within_run_lead"].any()
    (row,) = compare(disagreeing, "a").table.itertuples()
    assert row.level == "seeds" and row.seeds == 6
    assert row.t_p > 0.5 and row.signflip_p > 0.5 and row.wins == 0.5
    assert row.verdict == "not established"
    text = tables.report_text(disagreeing, "markdown", reference="a")
    assert "**" not in text


def test_six_agreeing_seeds_are_significant_and_bold(agreeing):
    summary = summarize(agreeing).set_index("method")
    assert summary.loc["a", "bold"] and summary.loc["a", "lead_test"] == "paired t over 6 seeds"
    (row,) = compare(agreeing, "a").table.itertuples()
    assert row.t_p < 1e-4 and row.wins == 1.0 and row.verdict == "ahead"
    assert row.signflip_p == pytest.approx(2 / 2 ** 6)  # every sign agrees: the floor
    text = tables.report_text(agreeing, "markdown", reference="a")
    assert "| a (conv4) | **" in text and "(6 runs)" in text
    assert "0.0312 at S = 6" in text  # the legend says how low the exact test can go


def test_seed_level_ci_is_scipys_t_interval_on_the_seed_means(agreeing):
    frame = with_episodes(agreeing)
    summary = summarize(agreeing).set_index("method")
    for method in ("a", "b"):
        means = np.array([episodes.mean() * 100 for episodes in
                          frame[frame["method"] == method].sort_values("seed")["episodes"]])
        low, high = scipy_stats.t.interval(0.95, len(means) - 1, loc=means.mean(),
                                           scale=scipy_stats.sem(means))
        assert summary.loc[method, "acc"] == pytest.approx(means.mean())
        assert summary.loc[method, "ci95"] == pytest.approx((high - low) / 2)
        assert summary.loc[method, "between_sd"] == pytest.approx(means.std(ddof=1))
    (row,) = compare(agreeing, "a").table.itertuples()
    a = np.array([e.mean() * 100 for e in frame[frame.method == "a"].sort_values("seed").episodes])
    b = np.array([e.mean() * 100 for e in frame[frame.method == "b"].sort_values("seed").episodes])
    low, high = scipy_stats.t.interval(0.95, 5, loc=(a - b).mean(), scale=scipy_stats.sem(a - b))
    assert row.diff == pytest.approx((a - b).mean())
    assert row.ci95 == pytest.approx((high - low) / 2)
    assert row.t_p == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)


@pytest.mark.parametrize("seed", range(5))
def test_signflip_p_is_the_brute_force_enumeration(seed):
    d = np.random.default_rng(seed).normal(0.5, 1.0, 3 + seed)
    observed = abs(d.sum())
    patterns = [abs(sum(sign * x for sign, x in zip(signs, d)))
                for signs in itertools.product((1, -1), repeat=d.size)]
    expected = sum(total >= observed - 1e-12 for total in patterns) / len(patterns)
    assert stats.signflip_p(d) == pytest.approx(expected)
    assert stats.signflip_p(d) >= stats.signflip_floor(d.size)


def test_signflip_floor_and_zero_differences():
    assert [stats.signflip_floor(s) for s in (3, 5, 6)] == [0.25, 0.0625, 0.03125]
    assert stats.signflip_p([0.0, 0.0, 0.0]) == 1.0


def test_seeds_needed_follows_the_t_quantile_rule():
    """docs/statistics.md's example: σ_d = 0.5, δ = 1, 80% power, α = 0.05 → 5 runs."""
    assert stats.seeds_needed(0.5, 1.0) == 5
    needed = stats.seeds_needed(1.3, 1.0)
    for count, ok in ((needed - 1, False), (needed, True)):
        lhs = scipy_stats.t.ppf(0.975, count - 1) + scipy_stats.t.ppf(0.8, count - 1)
        assert bool(lhs <= np.sqrt(count) / 1.3) == ok


def test_one_run_is_worded_as_one_run(tmp_path):
    single = study(tmp_path, {"a": {0: 1.0}}, seeds=[0])
    summary = summarize(single).set_index("method")
    assert summary.loc["a", "ci_level"] == "episodes"
    assert not summary.loc["a", "bold"] and summary.loc["a", "within_run_lead"]
    text = tables.report_text(single, "markdown", reference="a")
    assert "(1 run)‡" in text
    assert "One training run per cell: every ± covers the test episodes of that one run" in text
    assert "1 run (within one training run)" in text
    assert "| 1 | b | +" in text and "one run only: ahead" in text


def test_the_variance_table_puts_runs_beside_episodes(agreeing):
    text = tables.report_text(agreeing, "markdown")
    assert "training runs against test episodes" in text
    summary = summarize(agreeing).set_index("method")
    row = summary.loc["a"]
    assert f"| 1 | a | 6 | {row.between_sd:.2f} | {row.within_se:.2f} |" in text


def test_seeds_one_method_lacks_are_named_not_compared(tmp_path):
    frame = study(tmp_path, {"a": dict(enumerate([1.0] * 6)), "c": {0: 1.0, 1: 2.0, 2: 1.5},
                             "d": {9: 1.0}}, seeds=[*range(6), 9])
    comparison = compare(frame, "b")
    table = comparison.table.set_index("method")
    assert table.loc["c", "seeds"] == 3 and table.loc["c", "seed_list"] == "0,1,2"
    assert table.loc["a", "seeds"] == 6
    notes = " | ".join(comparison.partial)
    assert "b vs c in synthetic 5-way 1-shot: compared on seeds 0, 1, 2 only (seed 3: c has " \
           "no run; seed 4: c has no run; seed 5: c has no run; seed 9: c has no run)" in notes
    assert table.loc["d", "level"] == "episodes"  # one seed in common: within one run


def test_power_is_validated_in_one_line(tmp_path, capsys, disagreeing):
    for bad in ("0", "-1", "abc", "nan", "inf"):
        with pytest.raises(SystemExit) as exit_info:
            main(["report", str(tmp_path), "--compare", "a", "--power", bad])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --power") and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path), "--power", "1"])
    assert exit_info.value.code == 2 and "--power needs --compare" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path), "--compare", "a", "--power", "1", "--format", "markdown"])
    assert exit_info.value.code == 0
    assert "runs for 1 point |" in capsys.readouterr().out


def test_check_with_a_multi_seed_baseline_uses_its_between_run_spread(agreeing, tmp_path):
    verdicts = {v.key[0]: v for v in check.check(agreeing, agreeing[agreeing["seed"] == 0])}
    rule = verdicts["a"].describe()
    assert "over runs: between-run SD of the baseline's 6 runs" in rule
    per_seed = agreeing[agreeing.method == "a"].sort_values("seed")["acc"].to_numpy()
    expected = scipy_stats.t.ppf(0.975, 5) * per_seed.std(ddof=1) * np.sqrt(1 / 6 + 1)
    assert verdicts["a"].allowed == pytest.approx(expected)


def test_test_seed_gives_every_training_seed_the_same_episodes(tmp_path, capsys, monkeypatch,
                                                               glyph_cache):
    """--test-seed 0: seeds 0 and 1 share episodes_hash and differ in training; without it each
    seed draws its own episodes. Seed 0's cell keeps the id it had before --test-seed existed."""
    shared, own = tmp_path / "shared", tmp_path / "own"
    args = ["run", "--methods", "protonet", "--shots", "1", "--seed", "0,1", *TINY]
    assert run_main([*args, "--test-seed", "0", "--out", str(shared)], capsys, monkeypatch,
                    glyph_cache)[0] == 0
    assert run_main([*args, "--out", str(own)], capsys, monkeypatch, glyph_cache)[0] == 0
    same, apart = results.load(shared).set_index("seed"), results.load(own).set_index("seed")
    assert same.loc[0, "episodes_hash"] == same.loc[1, "episodes_hash"]
    assert list(same["test_seed"]) == [0, 0] and list(apart["test_seed"]) == [0, 1]
    assert apart.loc[0, "episodes_hash"] != apart.loc[1, "episodes_hash"]
    assert same.loc[0, "cell_id"] == apart.loc[0, "cell_id"]  # test seed = seed: id unchanged
    assert same.loc[1, "cell_id"] != apart.loc[1, "cell_id"]
    assert "test_seed" in json.loads(same.loc[1, "config"])
    assert "test_seed" not in json.loads(same.loc[0, "config"])
    comparison = compare(pd.concat([results.load(shared)]), "protonet", strict=False)
    assert comparison.table.empty  # one method: nothing to pair, and no traceback


@pytest.mark.parametrize("value, message", [
    ("-1", "--test-seed must be integers ≥ 0, got -1"),
    ("4294967296", "--test-seed must be at most 4294967295"),
    ("x", "--test-seed 'x' is not an integer"),
    ("0,1", "--test-seed takes one seed")])
def test_bad_test_seed_is_one_line(value, message, tmp_path, capsys, monkeypatch, glyph_cache):
    code, captured = run_main(["run", "--methods", "protonet", "--test-seed", value, "--out",
                               str(tmp_path)], capsys, monkeypatch, glyph_cache)
    assert code == 2 and message in captured.err and captured.err.count("\n") == 1


def test_older_rows_read_their_test_seed_as_their_seed(tmp_path):
    """A results.csv of schema 3 (no test_seed column) loads with test_seed = seed, and a row
    appended to it upgrades the file without misaligning the old rows."""
    import shutil
    from pathlib import Path

    example = Path(__file__).parent / "data" / "example_results"
    copy = tmp_path / "copy"
    shutil.copytree(example, copy)
    frame = results.load(copy)
    assert (frame["test_seed"] == frame["seed"]).all()


def test_a_lead_only_on_the_seeds_in_common_is_not_taken_the_wrong_way(tmp_path):
    """'a' is best over its six seeds but behind 'c' on the two seeds they share: no bold."""
    frame = study(tmp_path, {"a": dict(enumerate([-1.0, -1.1, 5, 5, 5, 5])),
                             "c": {0: 0.0, 1: 0.0}})
    summary = summarize(frame).set_index("method")
    assert summary.loc["a", "acc"] > summary.loc["c", "acc"]
    assert not summary["bold"].any()


def test_shared_episodes_are_counted_once_and_their_sampling_is_added(agreeing):
    """Six runs on one episode set: the episode-only CI is that of the N run-averaged episodes
    (not of 6·N copies), and 'CI runs + episodes' adds their sampling to the CI over runs."""
    frame = with_episodes(agreeing)
    summary = summarize(agreeing).set_index("method")
    runs = np.array(list(frame[frame.method == "a"].sort_values("seed")["episodes"])) * 100
    averaged = runs.mean(axis=0)
    row = summary.loc["a"]
    assert row["shared_episodes"]
    assert row["episode_ci95"] == pytest.approx(1.96 * averaged.std(ddof=1) / np.sqrt(EPISODES))
    means = runs.mean(axis=1)
    expected = scipy_stats.t.ppf(0.975, 5) * np.sqrt(means.var(ddof=1) / 6
                                                     + averaged.var(ddof=1) / EPISODES)
    assert row["ci95_both"] == pytest.approx(expected)
    assert row["ci95_both"] > row["ci95"]


def test_runs_that_differ_by_exactly_the_same_amount_make_no_claim(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.7, 200)
    for seed in (0, 1):  # deterministic: every run identical
        write_cell(tmp_path, "b", seed, base)
        write_cell(tmp_path, "a", seed, np.clip(base + 0.02, 0, 1))
    frame = results.load(tmp_path)
    (row,) = compare(frame, "a").table.itertuples()
    assert np.isnan(row.t_p) and row.verdict == "not established"
    assert not summarize(frame)["bold"].any()


@pytest.mark.parametrize("content", [np.array([]), np.array([0.5, np.nan]), np.array([1.5])])
def test_a_damaged_per_episode_file_is_named(tmp_path, content):
    study(tmp_path, {"a": {0: 1.0, 1: 1.0}}, seeds=[0, 1])
    frame = results.load(tmp_path)
    damaged = frame[frame["method"] == "a"].iloc[0]["cell_id"]
    np.save(tmp_path / "per_episode" / f"{damaged}.npy", content)
    with pytest.raises(BenchError, match=f"{damaged}.npy does not hold per-episode accuracies"):
        summarize(frame)


def test_one_method_on_two_backbones_is_two_rows_everywhere(tmp_path):
    rng = np.random.default_rng(2)
    base = rng.uniform(0.3, 0.7, 300)
    for seed in range(3):
        write_cell(tmp_path, "b", seed, base)
        write_cell(tmp_path, "p", seed, np.clip(base + 0.01 * (seed + 1), 0, 1))
        write_cell(tmp_path, "p", seed, np.clip(base + 0.05 + rng.normal(0, 0.01, 300), 0, 1),
                   backbone="resnet12")
    frame = results.load(tmp_path)
    summary = summarize(frame).set_index(["method", "backbone"])
    assert summary.loc[("p", "resnet12"), "bold"]
    table = compare(frame, "b").table.set_index("method")
    assert set(table.index) == {"p (conv4)", "p (resnet12)"}
    assert table.loc["p (resnet12)", "diff"] < table.loc["p (conv4)", "diff"] < 0
