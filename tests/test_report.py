"""bench.report.summary, bench.report.tables, bench.report.plots and `bench report` on the
checked-in example results."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats as scipy_stats

from bench.cli.report import report_command
from bench.errors import BenchError
from bench.report import check, plots, render, tables
from bench.report.compare import compare
from bench.report.pairing import EpisodesMismatch, paired_episodes
from bench.report.rows import with_episodes
from bench.report.summary import summarize
from bench.results import load

EXAMPLE = Path(__file__).parent / "data" / "example_results"
MISMATCHED = EXAMPLE / "mismatched"


@pytest.fixture(scope="module")
def frame():
    return load(EXAMPLE)


@pytest.fixture(scope="module")
def with_mismatched():
    return load([EXAMPLE, MISMATCHED])


def episodes_of(frame, method, shot):
    """Per-episode accuracies (percent) of the cell's seeds, concatenated in episodes_hash order."""
    rows = frame[(frame["method"] == method) & (frame["shot"] == shot)]
    rows = rows.sort_values("episodes_hash")
    return np.concatenate([np.load(EXAMPLE / "per_episode" / f"{cell}.npy")
                           for cell in rows["cell_id"]]) * 100


def test_rows_of_different_experiments_are_not_pooled(frame, tmp_path, monkeypatch):
    """A 1-shot- and a 5-shot-trained protonet tested at 5-shot are two rows, not two seeds."""
    def trained_at(row, shot):
        config = json.loads(row["config"])
        config["train"] = {"shot": shot, "way": 5}
        return json.dumps(config)

    edited = frame.copy()
    cell = (edited["method"] == "protonet") & (edited["shot"] == 5)
    edited.loc[cell, "config"] = [trained_at(row, 1 if row["seed"] == 0 else 5)
                                  for _, row in edited[cell].iterrows()]
    summary = summarize(edited).set_index(["method", "shot"])
    assert summary.loc[("protonet [train.shot=1]", 5), "n_seeds"] == 1
    assert summary.loc[("protonet [train.shot=5]", 5), "n_seeds"] == 1
    assert ("protonet", 5) not in summary.index
    assert summary.loc[("protonet", 1), "n_seeds"] == 2  # the 1-shot cell is one experiment
    assert summary.loc[("trm", 5), "n_seeds"] == 2
    assert {key[0] for key in check.cell_runs(edited)} == {
        "trm", "cosine", "protonet", "protonet [train.shot=1]", "protonet [train.shot=5]"}
    with pytest.raises(BenchError, match=r"protonet \[train.shot=5\] and protonet "
                                         r"\[train.shot=1\] in glyphs 5-way 5-shot were "
                                         "measured on different episodes"):
        compare(edited, "protonet [train.shot=5]",  # seed 1's episodes vs seed 0's
                       against=["protonet [train.shot=1]"])
    curves, draw = [], plots.curves_figure
    monkeypatch.setattr(plots, "curves_figure", lambda logs, *args: curves.append(sorted(logs))
                        or draw(logs, *args))
    assert plots.write_plots(edited, tmp_path)
    assert ["cosine", "protonet [train.shot=1]", "protonet [train.shot=5]", "trm"] in curves


def test_a_labelled_model_keeps_its_label_at_the_other_shot(frame):
    """One 1-shot-trained protonet tested at 1- and 5-shot, beside a 5-shot-trained one at 5-shot:
    the 1-shot-trained model's 1-shot row carries the same label as its 5-shot row. Models trained
    at their test shot, as a plain run trains them, get no label."""
    def trained_at(row, shot):
        config = json.loads(row["config"])
        config["train"] = {"shot": shot, "way": 5}
        return json.dumps(config)

    def summary_of(train_shot):
        edited = frame.copy()
        for position, row in edited.iterrows():
            if row["method"] == "protonet":
                edited.at[position, "config"] = trained_at(row, train_shot(row))
        return summarize(edited).set_index(["method", "shot"])

    plain = summary_of(lambda row: row["shot"])
    assert {("protonet", 1), ("protonet", 5)} <= set(plain.index)
    mixed = summary_of(lambda row: 5 if row["shot"] == 5 and row["seed"] == 1 else 1)
    assert mixed.loc[("protonet [train.shot=1]", 1), "n_seeds"] == 2
    assert mixed.loc[("protonet [train.shot=1]", 5), "n_seeds"] == 1
    assert mixed.loc[("protonet [train.shot=5]", 5), "n_seeds"] == 1
    assert not any(method == "protonet" for method, _ in mixed.index)
    assert ("protonet [train.shot=5]", 1) not in mixed.index


def test_a_setting_configs_leave_out_reads_as_its_default(frame):
    """Configs leave out train.precision when it is fp32: beside a bf16 row it is labelled fp32,
    not 'unset', and beside an explicit fp32 row it is the same experiment."""
    def with_precision(row, precision):
        config = json.loads(row["config"])
        if precision is not None:
            config["train"] = {"precision": precision}
        return json.dumps(config)

    def summary_of(precision_by_seed):
        edited = frame.copy()
        cell = (edited["method"] == "protonet") & (edited["shot"] == 5)
        edited.loc[cell, "config"] = [with_precision(row, precision_by_seed[row["seed"]])
                                      for _, row in edited[cell].iterrows()]
        return summarize(edited).set_index(["method", "shot"])

    mixed = summary_of({0: "bf16", 1: None})
    assert mixed.loc[("protonet [train.precision=bf16]", 5), "n_seeds"] == 1
    assert mixed.loc[("protonet [train.precision=fp32]", 5), "n_seeds"] == 1
    assert not any("unset" in method for method, _ in mixed.index)
    same = summary_of({0: "fp32", 1: None})
    assert same.loc[("protonet", 5), "n_seeds"] == 2

def one_seed(frame, seed=0):
    return frame[frame["seed"] == seed]


def test_summary_is_over_seeds_with_the_episode_ci_beside_it(frame):
    """Two seeds: the mean of the per-seed accuracies ± t(0.975, 1)·sd/√2 over the seeds; the
    pooled-episode CI stays as episode_ci95; spread and episode SE side by side."""
    summary = summarize(frame).set_index(["method", "shot"])
    rows = frame[(frame.method == "trm") & (frame.shot == 1)].sort_values("seed")
    per_seed = np.array([np.load(EXAMPLE / "per_episode" / f"{cell}.npy").mean() * 100
                         for cell in rows["cell_id"]])
    pooled = episodes_of(frame, "trm", 1)
    cell = summary.loc[("trm", 1)]
    assert cell["acc"] == pytest.approx(per_seed.mean())
    low, high = scipy_stats.t.interval(0.95, 1, loc=per_seed.mean(),
                                       scale=scipy_stats.sem(per_seed))
    assert cell["ci95"] == pytest.approx((high - low) / 2)
    assert cell["ci_level"] == "seeds"
    assert cell["episode_ci95"] == pytest.approx(1.96 * pooled.std(ddof=1) / np.sqrt(400))
    assert cell["between_sd"] == pytest.approx(per_seed.std(ddof=1))
    assert (cell["n_episodes"], cell["n_seeds"]) == (400, 2)
    assert len(summary) == 6


def test_summary_of_one_seed_is_its_episode_ci(frame):
    summary = summarize(one_seed(frame)).set_index(["method", "shot"])
    pooled = episodes_of(one_seed(frame), "trm", 1)
    cell = summary.loc[("trm", 1)]
    assert cell["acc"] == pytest.approx(pooled.mean())
    assert cell["ci95"] == pytest.approx(1.96 * pooled.std(ddof=1) / np.sqrt(200))
    assert cell["ci_level"] == "episodes" and cell["n_seeds"] == 1


def test_bold_only_where_the_lead_holds_over_seeds(frame):
    summary = summarize(frame).set_index(["method", "shot"])
    # +3.23 and +3.77 points over protonet in the two seeds: paired t over seeds p = 0.049
    assert summary.loc[("trm", 1), "bold"]
    assert summary.loc[("trm", 1), "lead_test"] == "paired t over 2 seeds"
    assert not summary["bold"].drop(index=[("trm", 1)]).any()  # 5-shot: +0.57, +0.91, p = 0.15


def test_a_lead_within_one_run_is_not_bold(frame):
    summary = summarize(one_seed(frame)).set_index(["method", "shot"])
    assert not summary["bold"].any()
    assert summary.loc[("trm", 1), "within_run_lead"]
    assert summary.loc[("trm", 1), "lead_test"] == "within one run: paired t-test"
    text = tables.report_text(one_seed(frame), "markdown")
    assert "| trm (conv4) | 53.24 ± 1.77 (1 run)‡ |" in text
    assert "One training run per cell: every ± covers the test episodes of that one run" in text
    assert "‡: best in its column and ahead of the runner-up within one training run only" in text


def test_without_shared_episodes_one_run_falls_back_to_ci_overlap(with_mismatched):
    frame = with_episodes(one_seed(with_mismatched))
    is_variant = frame["method"] == "trm(attn_dim=128)"
    boosted = frame.assign(episodes=[e + 0.1 if v else e
                                     for e, v in zip(frame["episodes"], is_variant)])
    summary = summarize(boosted).set_index(["method", "shot"])
    assert not summary.loc[("trm(attn_dim=128)", 5), "bold"]
    assert summary.loc[("trm(attn_dim=128)", 5), "within_run_lead"]
    assert summary.loc[("trm(attn_dim=128)", 5), "lead_test"] == \
        "within one run: non-overlapping CIs"


def test_one_run_comparison_is_the_episode_level_test(frame):
    single = one_seed(frame)
    table = compare(single, "trm").table.set_index(["method", "shot"])
    raw = []
    for method, shot in table.index:
        a, b = episodes_of(single, "trm", shot), episodes_of(single, method, shot)
        row = table.loc[(method, shot)]
        assert row["level"] == "episodes"
        assert row["diff"] == pytest.approx((a - b).mean())
        assert row["t_p"] == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)
        assert row["wilcoxon_p"] == pytest.approx(scipy_stats.wilcoxon(a, b).pvalue)
        assert row["n"] == 200
        assert row["verdict"].startswith("one run only:")
        raw.append(row["t_p"])
    # Holm by hand: i-th smallest of m times (m - i), running maximum, in raw-p order.
    order = np.argsort(raw)
    expected = np.maximum.accumulate([min(1, (len(raw) - i) * raw[j]) for i, j in enumerate(order)])
    assert table["t_p_holm"].to_numpy()[order] == pytest.approx(expected)
    assert np.all(np.diff(table["t_p_holm"].to_numpy()[order]) >= 0)


def test_seed_level_comparison_matches_scipy(frame):
    table = compare(frame, "trm").table.set_index(["method", "shot"])
    for method, shot in table.index:
        row = table.loc[(method, shot)]
        rows = {m: frame[(frame.method == m) & (frame.shot == shot)].sort_values("seed")
                for m in ("trm", method)}
        means = {m: np.array([np.load(EXAMPLE / "per_episode" / f"{c}.npy").mean() * 100
                              for c in rows[m]["cell_id"]]) for m in rows}
        d = means["trm"] - means[method]
        assert row["level"] == "seeds" and row["seeds"] == 2
        assert row["diff"] == pytest.approx(d.mean())
        low, high = scipy_stats.t.interval(0.95, 1, loc=d.mean(), scale=scipy_stats.sem(d))
        assert row["ci95"] == pytest.approx((high - low) / 2)
        assert row["t_p"] == pytest.approx(scipy_stats.ttest_1samp(d, 0).pvalue)
        assert row["signflip_p"] == pytest.approx(0.5)  # 2 seeds: the smallest p is 2/4
        pooled_a, pooled_b = episodes_of(frame, "trm", shot), episodes_of(frame, method, shot)
        assert row["episode_t_p"] == pytest.approx(scipy_stats.ttest_rel(pooled_a,
                                                                          pooled_b).pvalue)


def test_pairs_on_different_episodes_are_refused(with_mismatched):
    comparison = compare(with_mismatched, "trm")
    assert len(comparison.table) == 4
    assert len(comparison.refused) == 1
    assert "trm and trm(attn_dim=128) in glyphs 5-way 5-shot were measured on different " \
           "episodes" in comparison.refused[0]
    with pytest.raises(BenchError, match="nothing to compare against trm: .*different episodes"):
        compare(with_mismatched, "trm", against=["trm(attn_dim=128)"])
    frame = with_episodes(with_mismatched)
    key = {"dataset": "glyphs", "split": "test", "backbone": "conv4", "way": 5, "shot": 5,
           "method": "trm"}
    with pytest.raises(EpisodesMismatch, match="episodes_hash"):
        paired_episodes(frame, key, "trm(attn_dim=128)")


def test_unknown_reference_names_the_methods(frame):
    with pytest.raises(BenchError, match="'matchingnet' is not in the results; methods: cosine, "):
        compare(frame, "matchingnet")


def test_markdown_table_values(frame):
    text = tables.report_text(frame, "markdown")
    assert "### glyphs, 5-way (test)" in text
    assert "| method | 1-shot | 5-shot |" in text
    assert "| trm (conv4) | **53.01 ± 2.88 (2 runs)** | 69.73 ± 1.27 (2 runs) |" in text
    assert "| protonet (conv4) | 49.51 ± 6.31 (2 runs) | 68.99 ± 3.47 (2 runs) |" in text
    assert "N = 200 test episodes per run, 2 runs per cell." in text
    assert "| 1 | protonet | 2 | 0.70 | 0.95 | 0.7 | ± 6.31 | ± 6.31 | ± 1.32 |" in text


def test_latex_and_csv(with_mismatched):
    latex = tables.report_text(with_mismatched, "latex", reference="trm")
    assert r"\textbf{53.01 $\pm$ 2.88 (2 runs)}" in latex
    assert r"trm(attn\_dim=128)" in latex
    summary_csv = tables.report_text(with_mismatched, "csv").splitlines()
    assert summary_csv[0].startswith("dataset,split,way,method,backbone,shot,acc,ci95")
    assert len(summary_csv) == 1 + 7
    comparison_csv = tables.report_text(with_mismatched, "csv", reference="trm").splitlines()
    assert "t_p_holm" in comparison_csv[0] and len(comparison_csv) == 1 + 4


def test_cli_markdown_and_compare():
    runner = CliRunner()
    result = runner.invoke(report_command, [str(EXAMPLE), "--format", "markdown",
                                            "--compare", "trm"])
    assert result.exit_code == 0, result.output
    assert "| trm (conv4) | **53.01 ± 2.88 (2 runs)** | 69.73 ± 1.27 (2 runs) |" in result.output
    assert "paired comparison against trm" in result.output
    assert ("| 5 | protonet | +0.74 ± 2.20 | +0.57 +0.91 | 0.146 (0.146) | 0.500 (1.000) | "
            "2/2 | not established |") in result.output
    result = runner.invoke(report_command, [str(EXAMPLE), "--compare", "nobody"])
    assert isinstance(result.exception, BenchError)


def test_symlinked_results_file_finds_its_per_episode_files(tmp_path):
    """results/reference/omniglot.csv is a link to omniglot/results.csv: comparisons still pair."""
    link = tmp_path / "reference.csv"
    link.symlink_to((EXAMPLE / "results.csv").resolve())
    result = CliRunner().invoke(report_command, [str(link), "--format", "markdown",
                                                 "--compare", "trm"])
    assert result.exit_code == 0, result.output
    assert "| 5 | protonet | +0.74 ± 2.20 | +0.57 +0.91 |" in result.output


def test_cli_rich_table_renders(with_mismatched):
    result = CliRunner().invoke(report_command, [str(EXAMPLE), str(MISMATCHED), "--compare",
                                                 "trm"])
    assert result.exit_code == 0, result.output
    assert "53.01 ± 2.88" in result.output and "Not compared" in result.output


def test_plots_written_and_not_empty(frame, tmp_path):
    paths = plots.write_plots(frame, tmp_path)
    names = {path.name for path in paths}
    for stem in ("acc_vs_shot_glyphs_5way", "bars_5way_1shot", "bars_5way_5shot",
                 "curves_glyphs_5way_1shot", "curves_glyphs_5way_5shot"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
    for path in paths:
        assert path.stat().st_size > 5000
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths if p.suffix == ".png")


def test_reporting_never_imports_torch():
    code = ("import sys; import bench.report.summary, bench.report.compare, bench.report.tables, "
            "bench.report.plots, bench.report.check, bench.report.html, bench.cli.report, "
            "bench.stats; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def _copy_results(tmp_path, source=EXAMPLE):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(source, target)
    return target


def test_report_without_per_episode_files_prints_csv_numbers_and_says_why(tmp_path):
    import shutil

    copy = _copy_results(tmp_path)
    shutil.rmtree(copy / "per_episode")
    result = CliRunner().invoke(report_command, [str(copy), "--format", "markdown",
                                                 "--compare", "trm"])
    assert result.exit_code == 0, result.output
    rows = load(copy)
    trm = rows[(rows["method"] == "trm") & (rows["shot"] == 1)]
    assert f"| trm (conv4) | {trm['acc'].mean():.2f} ± 2.88 (2 runs)† |" in result.output
    assert "†: per-episode files missing" in result.output
    assert "nothing could be paired" in result.output
    assert result.output.count("Not compared: trm in glyphs 5-way 1-shot has no per-episode "
                               "accuracies") == 1


def test_comparison_says_which_tables_lack_the_reference(frame):
    """Rows relabelled as different experiments leave no plain `trm` in a table: the report
    says so and names the labels to pass, instead of dropping that table silently."""
    loaded = with_episodes(frame)
    twenty = loaded.assign(way=20, cell_id=loaded["cell_id"] + "w", method=[
        f"{m} [train.episodes=2]" if m == "trm" else m for m in loaded["method"]])
    comparison = compare(pd.concat([loaded, twenty], ignore_index=True), "trm")
    assert set(comparison.table["way"]) == {5}
    (note,) = comparison.refused
    assert note.startswith("glyphs 20-way (test): its trm rows are different experiments")
    assert "trm [train.episodes=2]" in note


def test_rich_caption_keeps_bracketed_labels():
    from rich.console import Console

    grid = tables.Grid("t [train.shot=5]", ["method"], [[("protonet [train.shot=5]", False)]],
                       ["Not compared: protonet [train.shot=5] has no result"])
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(render.to_rich(grid))
    text = console.export_text()
    assert text.count("[train.shot=5]") == 3


def test_rich_report_fits_80_columns_with_numbers_whole(with_mismatched):
    from rich.console import Console

    console = Console(width=80, record=True, file=io.StringIO())
    for grid in tables.report_grids(with_mismatched, "trm"):
        console.print(render.to_rich(grid))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    for row in compare(with_mismatched, "trm").table.itertuples():
        assert f"{row.diff:+.2f} ± {row.ci95:.2f}" in text


def test_cross_domain_rows_are_their_own_dataset_in_reports():
    """A model trained on mini-imagenet and tested on cub is reported as mini-imagenet→cub,
    apart from cub's own rows; rows without train_dataset (schema 1) keep their dataset."""
    import pandas as pd

    from bench.report.rows import pooling_rows

    frame = pd.DataFrame({
        "cell_id": ["a", "b", "c"], "method": ["protonet"] * 3, "split": ["closer-look"] * 3,
        "backbone": ["conv4"] * 3, "way": [5] * 3, "shot": [1] * 3,
        "dataset": ["cub", "cub", "omniglot"], "train_dataset": ["mini-imagenet", "cub", None]})
    labels = pooling_rows(frame, ["dataset", "split", "way", "method", "backbone", "shot"])
    assert labels["dataset"].tolist() == ["mini-imagenet→cub", "cub", "omniglot"]
    assert labels["method"].tolist() == ["protonet"] * 3


def test_bars_of_one_dataset_under_two_splits(frame, tmp_path):
    """One method on one dataset under two splits (mini-imagenet with and without augmentation):
    each split is a group of its own in the bar figure (one group would repeat labels)."""
    other = frame.assign(split="standard (augment=off)", cell_id=frame["cell_id"] + "x")
    paths = plots.write_plots(pd.concat([frame, other], ignore_index=True), tmp_path)
    assert any(path.name == "bars_5way_1shot.png" for path in paths)
    groups = plots.bar_groups(pd.concat([frame, other], ignore_index=True))
    assert groups.nunique() == 2 * frame["dataset"].nunique()


def test_methods_keep_distinct_colours_beyond_ten():
    assert len(set(plots.method_colors([f"m{i}" for i in range(11)]).values())) == 11
    assert len(set(plots.method_colors([f"m{i}" for i in range(20)]).values())) == 20
    assert plots.method_colors(["b", "a"])["a"] == plots.method_colors(["a"])["a"]
