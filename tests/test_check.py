"""bench.report.check and `bench check`: the regression rule, missing and new cells, --update."""

import math
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from bench.cli.report import check_command
from bench.errors import BenchError
from bench.report import check
from bench.results import load

EXAMPLE = Path(__file__).parent / "data" / "example_results"
TRM_5SHOT = ("trm", "glyphs", "test", "conv4", 5, 5)


@pytest.fixture
def baseline():
    return load(EXAMPLE)


def weakened(frame, points: float, method="trm", shot=5):
    """``frame`` with ``points`` taken off the accuracy of every seed of one cell."""
    frame = frame.copy()
    frame.loc[(frame["method"] == method) & (frame["shot"] == shot), "acc"] -= points
    return frame


def test_cell_runs_average_seeds_and_combine_cis(baseline):
    rows = baseline[(baseline["method"] == "trm") & (baseline["shot"] == 5)]
    acc, ci95 = check.cell_runs(baseline)[TRM_5SHOT][:2]
    assert acc == pytest.approx(rows["acc"].mean())
    assert ci95 == pytest.approx(math.sqrt((rows["ci95"] ** 2).sum()) / 2)


def test_identical_results_pass(baseline):
    verdicts = check.check(baseline, baseline)
    assert len(verdicts) == 6
    assert {v.status for v in verdicts} == {"ok"}
    assert check.failed(verdicts) == []


def test_one_seed_baseline_rule_is_drop_beyond_combined_ci(baseline):
    one_seed = baseline[baseline["seed"] == 0]
    allowed = math.sqrt(2) * check.cell_runs(one_seed)[TRM_5SHOT][1]
    assert check.failed(check.check(one_seed, weakened(one_seed, allowed - 0.01))) == []
    failures = check.failed(check.check(one_seed, weakened(one_seed, allowed + 0.01)))
    assert [f.key for f in failures] == [TRM_5SHOT]
    assert failures[0].drop == pytest.approx(allowed + 0.01)
    assert "episode CIs" in failures[0].describe()


def test_multi_seed_baseline_rule_is_its_between_run_spread(baseline):
    """Two seeds of trm 5-shot (69.63, 69.83): the allowed drop of one fresh run is the 95%
    prediction half-width t(0.975, 1) · sd · sqrt(1/2 + 1/1), whatever the episode CIs say."""
    from scipy import stats as scipy_stats

    accs = baseline[(baseline["method"] == "trm") & (baseline["shot"] == 5)]["acc"].to_numpy()
    fresh = baseline[baseline["seed"] == 0]
    allowed = scipy_stats.t.ppf(0.975, 1) * accs.std(ddof=1) * math.sqrt(1 / 2 + 1)
    drop = accs.mean() - fresh[(fresh["method"] == "trm") & (fresh["shot"] == 5)]["acc"].iloc[0]
    verdict = {v.key: v for v in check.check(baseline, fresh)}[TRM_5SHOT]
    assert verdict.allowed == pytest.approx(allowed)
    assert verdict.drop == pytest.approx(drop)
    assert "over runs: between-run SD of the baseline's 2 runs" in verdict.describe()
    margin = allowed - drop
    assert check.failed(check.check(baseline, weakened(fresh, margin - 0.01))) == []
    failures = check.failed(check.check(baseline, weakened(fresh, margin + 0.01)))
    assert [f.key for f in failures] == [TRM_5SHOT]


def test_regression_line_names_method_cell_and_drop(baseline):
    one_seed = baseline[baseline["seed"] == 0]
    (failure,) = check.failed(check.check(one_seed, weakened(one_seed, 4.0)))
    line = failure.describe()
    assert line.startswith("REGRESSION trm on glyphs 5-way 5-shot (test, conv4): baseline 69.83")
    assert "new 65.83" in line and "drop +4.00 points (allowed 2.49, episode CIs" in line


def test_improvement_and_new_cells_pass(baseline):
    fresh = weakened(baseline, -5.0)
    extra = fresh[fresh["method"] == "cosine"].assign(method="cosine(scale=20)",
                                                      cell_id=lambda f: f["cell_id"] + "x")
    fresh = pd.concat([fresh, extra], ignore_index=True)
    verdicts = check.check(baseline, fresh)
    assert check.failed(verdicts) == []
    assert sum(v.status == "new" for v in verdicts) == 2


def test_missing_cells_fail_unless_allowed(baseline):
    fresh = baseline[baseline["method"] != "protonet"]
    failures = check.failed(check.check(baseline, fresh))
    assert [f.status for f in failures] == ["missing", "missing"]
    assert failures[0].describe().startswith("MISSING protonet on glyphs 5-way 1-shot")
    assert check.failed(check.check(baseline, fresh, allow_missing=True)) == []


def test_cli_passes_fails_and_updates(tmp_path, baseline):
    runner = CliRunner()
    result = runner.invoke(check_command, ["--baseline", str(EXAMPLE / "results.csv"),
                                           "--results", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    weak = tmp_path / "weak.csv"
    weakened(baseline, 4.0).drop(columns="source_dir").to_csv(weak, index=False)
    result = runner.invoke(check_command, ["--baseline", str(EXAMPLE / "results.csv"),
                                           "--results", str(weak)])
    assert result.exit_code == 1
    assert "REGRESSION trm on glyphs 5-way 5-shot" in result.output

    new_baseline = tmp_path / "baselines" / "ci.csv"
    result = runner.invoke(check_command, ["--baseline", str(new_baseline), "--results",
                                           str(weak), "--update"])
    assert result.exit_code == 0 and "12 rows" in result.output
    assert len(load(new_baseline)) == 12
    result = runner.invoke(check_command, ["--baseline", str(new_baseline), "--results",
                                           str(weak)])
    assert result.exit_code == 0, result.output


def test_missing_baseline_says_how_to_create_it(tmp_path):
    result = CliRunner().invoke(check_command, ["--baseline", str(tmp_path / "none.csv"),
                                                "--results", str(EXAMPLE)])
    assert isinstance(result.exception, BenchError)
    assert "--update" in str(result.exception)


def test_tolerance_widens_the_allowed_drop():
    import pandas as pd

    from bench.report import check as check_module

    def frame(acc):
        return pd.DataFrame([{"method": "trm", "dataset": "glyphs", "split": "standard",
                              "backbone": "conv64f", "way": 5, "shot": 1, "acc": acc,
                              "ci95": 1.0, "cell_id": f"c{acc}"}])

    strict = check_module.check(frame(80.0), frame(77.0))
    loose = check_module.check(frame(80.0), frame(77.0), tolerance=3.0)
    assert strict[0].status == "regression" and loose[0].status == "ok"
    assert loose[0].allowed == pytest.approx(2 ** 0.5 + 3.0)


def test_allow_missing_with_nothing_compared_fails(tmp_path, baseline):
    """A baseline of one dataset checked against results of another compares no cell: that is
    a failure (exit 1) saying so, not "N cells within their CIs"."""
    other = tmp_path / "other.csv"
    baseline.assign(dataset="omniglot").drop(columns="source_dir").to_csv(other, index=False)
    result = CliRunner().invoke(check_command, ["--baseline", str(EXAMPLE / "results.csv"),
                                                "--results", str(other), "--allow-missing"])
    assert result.exit_code == 1
    assert "no cell compared" in result.output
    assert "0 compared, 6 missing, 6 new" in result.output
    result = CliRunner().invoke(check_command, ["--baseline", str(EXAMPLE / "results.csv"),
                                                "--results", str(EXAMPLE)])
    assert "every compared cell within its CIs" in result.output
    assert "(6 compared, 0 missing, 0 new)" in result.output


def _one_cell(acc=80.0, ci95=1.0, **protocol):
    row = {"method": "trm", "dataset": "glyphs", "split": "standard", "backbone": "conv64f",
           "way": 5, "shot": 1, "acc": acc, "ci95": ci95, "seed": 0, "cell_id": f"c{acc}",
           "query": 15, "test_episodes": 600, "train_episodes": 500, "train_way": 5,
           "train_shot": 1, "train_query": 15}
    row.update(protocol)
    return pd.DataFrame([row])


@pytest.mark.parametrize("acc", [float("nan"), 150.0, -1.0])
def test_an_accuracy_that_is_not_one_never_passes(acc):
    (verdict,) = check.check(_one_cell(94.3), _one_cell(acc))
    assert verdict.status == "invalid" and check.failed([verdict])
    assert verdict.describe().startswith("INVALID trm on glyphs 5-way 1-shot")


@pytest.mark.parametrize("tolerance", [float("nan"), float("inf"), -1.0])
def test_a_tolerance_that_is_not_finite_is_refused(tolerance):
    with pytest.raises(BenchError, match="--tolerance must be a finite number of points ≥ 0"):
        check.check(_one_cell(94.3), _one_cell(60.0), allow_missing=True, tolerance=tolerance)


def test_another_protocol_is_not_comparable():
    """1 training episode, 2 test episodes of 1 query, 50 ± 58.8 against a 94.3 baseline."""
    fresh = _one_cell(50.0, 58.8, query=1, test_episodes=2, train_episodes=1)
    (verdict,) = check.check(_one_cell(94.3), fresh, allow_missing=True)
    assert verdict.status == "not-comparable" and check.failed([verdict])
    line = verdict.describe()
    assert line.startswith("NOT COMPARABLE trm on glyphs 5-way 1-shot")
    assert "query 15 in the baseline, 1 here" in line and "test_episodes 600" in line
    assert "train_episodes 500 in the baseline, 1 here" in line


def test_update_shows_changes_and_refuses_to_lose_cells(tmp_path, baseline):
    runner = CliRunner()
    path = tmp_path / "ci.csv"
    assert runner.invoke(check_command, ["--baseline", str(path), "--results", str(EXAMPLE),
                                         "--update"]).exit_code == 0
    before = path.read_bytes()
    few = tmp_path / "few.csv"
    baseline[baseline["method"] == "trm"].drop(columns="source_dir").to_csv(few, index=False)
    result = runner.invoke(check_command, ["--baseline", str(path), "--results", str(few),
                                           "--update"])
    assert isinstance(result.exception, BenchError)
    assert "--update would lose what" in str(result.exception)
    assert "dropped protonet on glyphs 5-way 1-shot" in str(result.exception)
    assert "--accept-losses" in str(result.exception)
    assert path.read_bytes() == before  # nothing written
    result = runner.invoke(check_command, ["--baseline", str(path), "--results", str(few),
                                           "--update", "--accept-losses"])
    assert result.exit_code == 0, result.output
    assert "dropped cosine on glyphs 5-way 1-shot" in result.output
    assert "moved trm on glyphs 5-way 1-shot (test, conv4): 53.01 → 53.01 (+0.00 points)" \
        in result.output
    assert len(load(path)) == 4
