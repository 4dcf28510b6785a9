"""The tables of `bench report` as Grids (rendered by bench.report.render), and as CSV.

Input is what ``bench.report.summary`` computes (``summarize``'s frame, a ``Comparison``);
nothing here reads files or does statistics. `bench run`'s closing tables
(``bench.cli.run_summary``) are Grids too, printed by ``to_rich``.
"""

from __future__ import annotations

from collections import Counter

from bench import stats
from bench.report.render import Grid, render
from bench.report.rows import GROUP_KEYS

CI_WORDS = {"normal": "1.96 x SD / sqrt(N)", "t": "t(0.975, N-1) x SD / sqrt(N)"}


def group_title(key: dict) -> str:
    extra = ", ".join(str(key[k]) for k in ("split",) if key.get(k))
    return f"{key['dataset']}, {key['way']}-way" + (f" ({extra})" if extra else "")


def _runs(count: int) -> str:
    return f"{count} run" + ("s" if count != 1 else "")


def _counts_note(table) -> str:
    per_run = (table["episodes_per_run"] if "episodes_per_run" in table
               else (table["n_episodes"] / table["n_seeds"]).round()).astype(int)
    counts = Counter(zip(per_run, table["n_seeds"]))
    (episodes, seeds), _ = counts.most_common(1)[0]
    note = f"N = {episodes} test episodes per run, {_runs(seeds)} per cell"
    exceptions = [f"{row.method} {row.shot}-shot: {_runs(row.n_seeds)} of {count}"
                  for row, count in zip(table.itertuples(), per_run)
                  if (count, row.n_seeds) != (episodes, seeds)]
    return note + (", except " + "; ".join(exceptions) if exceptions else "") + "."


def acc_text(acc: float, ci95: float) -> str:
    """``94.71 ± 0.52``: an accuracy and its 95% CI half-width, in percent."""
    return f"{acc:.2f} ± {ci95:.2f}"


def value_text(row) -> str:
    """``94.71 ± 0.52 (6 runs)``: the cell's accuracy, its ± and how many training runs it has."""
    marks = ("†" if getattr(row, "from_csv", False) else "") + (
        "‡" if getattr(row, "within_run_lead", False) else "")
    return f"{acc_text(row.acc, row.ci95)} ({_runs(row.n_seeds)}){marks}"


def _smallest_signflip(seeds) -> str:
    seeds = sorted({int(count) for count in seeds if count >= 2})
    return ", ".join(f"{stats.signflip_floor(count):.3g} at S = {count}" for count in seeds)


def summary_grids(summary) -> list[Grid]:
    """One Grid per (dataset, split, way): methods (backbone) as rows, shots as columns."""
    grids = []
    for key, table in summary.groupby(GROUP_KEYS, sort=True):
        shots = sorted(table["shot"].unique())
        rows = []
        for (method, backbone), method_rows in table.groupby(["method", "backbone"], sort=True):
            by_shot = {row.shot: row for row in method_rows.itertuples()}
            cells = [(f"{method} ({backbone})" if backbone else method, False)]
            for shot in shots:
                row = by_shot.get(shot)
                cells.append((value_text(row), bool(row.bold)) if row else ("-", False))
            rows.append(cells)
        ci_method = table["ci_method"].iloc[0]
        multi, single = table["n_seeds"] >= 2, table["n_seeds"] < 2
        footnotes = []
        if single.all():
            footnotes.append("One training run per cell: every ± covers the test episodes of that "
                             "one run only, not the variation between training runs.")
        if multi.any():
            shared = table.loc[multi, "shared_episodes"] if "shared_episodes" in table else []
            covers = ("it covers training runs; every run was tested on the same episodes, so it "
                      "is conditional on that episode set, whose own sampling the variance "
                      "table adds" if len(shared) and shared.all() else
                      "each run's mean carries its own test episodes' noise, so it covers both")
            footnotes.append(
                "(k runs), k ≥ 2: mean of the k training runs' accuracies ± 95% CI over runs "
                f"(Student t on the k per-run means, k − 1 degrees of freedom; {covers}).")
        if single.any():
            footnotes.append(
                f"(1 run): ± is the 95% CI over the test episodes of one training run "
                f"({ci_method}: {CI_WORDS[ci_method]}); it does not cover training-run "
                "variation.")
        footnotes.append(_counts_note(table))
        bold = ("Bold: best in its column and ahead of the runner-up over training runs: paired "
                "t-test over the seeds both have, each seed's two runs on identical episodes, "
                "p < 0.05, not adjusted (non-overlapping CIs over runs where they share fewer "
                "than 2 seeds). Bold needs ≥ 2 runs of both.")
        if multi.any():
            bold += (" The exact sign-flip test of the comparison table needs no normality but "
                     "cannot go below 2/2^S with S runs in common "
                     f"({_smallest_signflip(table['n_seeds'])}).")
        footnotes.append(bold)
        if table["within_run_lead"].any():
            footnotes.append("‡: best in its column and ahead of the runner-up within one training "
                             "run only (episode-level test, p < 0.05); not established over runs, "
                             "so not bold.")
        if "from_csv" in table and table["from_csv"].any():
            footnotes.append("†: per-episode files missing for some runs; acc and ci95 of "
                             "results.csv (seeds combined as in `bench check`); runs without "
                             "files are not paired.")
        grids.append(Grid(group_title(dict(zip(GROUP_KEYS, key))),
                          ["method"] + [f"{shot}-shot" for shot in shots], rows, footnotes))
    return grids


def variance_grids(summary) -> list[Grid]:
    """For the cells with ≥ 2 training runs: between-run SD beside the within-run (episode)
    standard error, and the episode-only CI, one Grid per (dataset, split, way)."""
    grids = []
    multi = summary[summary["n_seeds"] >= 2]
    for key, table in multi.groupby(GROUP_KEYS, sort=True):
        rows = []
        for row in table.sort_values(["shot", "method"]).itertuples():
            ratio = row.between_sd / row.within_se if row.within_se > 0 else float("nan")
            rows.append([(text, False) for text in (
                str(row.shot), row.method, str(row.n_seeds), f"{row.between_sd:.2f}",
                f"{row.within_se:.2f}", f"{ratio:.1f}", f"± {row.ci95:.2f}",
                f"± {row.ci95_both:.2f}", f"± {row.episode_ci95:.2f}")])
        header = ["shot", "method", "runs", "between-run SD", "within-run SE", "ratio",
                  "CI over runs", "CI runs + episodes", "episode-only CI"]
        footnotes = [
            "Points. Between-run SD: standard deviation of the per-run accuracies. Within-run SE: "
            "one run's standard error over its test episodes (root mean square over the runs). "
            "Where the ratio is well above 1, more test episodes do not narrow the CI; more "
            "training runs do. CI over runs: the accuracy tables' (t on the per-run means). CI "
            "runs + episodes: where every run was tested on the same episodes, the CI over runs "
            "is conditional on them; this one adds their sampling, t(0.975, S−1)·√(SD²/S + "
            "sd_e²/N) with sd_e the SD of the run-averaged episode accuracies (elsewhere it "
            "equals the CI over runs). Episode-only CI: over the test episodes alone (each "
            "episode once, averaged over the runs where they share episodes)."]
        grids.append(Grid(f"{group_title(dict(zip(GROUP_KEYS, key)))}: training runs against "
                          "test episodes", header, rows, footnotes, label_columns=2))
    return grids


def _holm_words(over_runs: int, within_runs: int) -> str:
    families = [f"the {count} comparisons {kind} of this report" for count, kind in
                ((over_runs, "over runs"), (within_runs, "within one training run")) if count]
    return "Holm: adjusted over " + ", and apart over ".join(families)


def _points(value: float) -> str:
    return f"{value:g} point" + ("" if value == 1 else "s")


def format_p(p: float) -> str:
    if p != p:  # NaN
        return "–"
    if p < 0.001:
        return f"{p:.1e}"
    return f"{p:.4f}" if p < 0.01 else f"{p:.3f}"  # two significant digits at least


def comparison_grids(comparison) -> list[Grid]:
    """The paired differences against the reference, one Grid per (dataset, split, way);
    refused pairs become footnotes of the last one."""
    reference, table = comparison.reference, comparison.table
    header = ["shot", "method", f"{reference} − method (points)", "per run", "p t (Holm)",
              "p exact (Holm)", "won", "verdict"]
    power = comparison.power_delta
    if power is not None:
        header.append(f"runs for {_points(power)}")  # the column the power note explains
    if not len(table):
        return [Grid(f"Paired comparison against {reference}: nothing could be paired", header,
                     [], [f"Not compared: {reason}" for reason in comparison.refused], 2)]
    grids = []
    for key, group in table.groupby(GROUP_KEYS, sort=True):
        rows = []
        for row in group.itertuples():
            seeds = row.level == "seeds"
            cells = [str(row.shot), row.method, f"{row.diff:+.2f} ± {row.ci95:.2f}",
                     row.seed_diffs,
                     f"{format_p(row.t_p)} ({format_p(row.t_p_holm)})",
                     f"{format_p(row.signflip_p)} ({format_p(row.signflip_p_holm)})" if seeds
                     else "–",
                     f"{row.wins * row.seeds:g}/{row.seeds}" if seeds else "1 run",
                     row.verdict]
            if power is not None:
                needed = getattr(row, "seeds_needed", None)
                if not seeds or row.diff_sd != row.diff_sd:  # no spread known
                    cells.append("–")
                else:
                    cells.append("> 10000" if needed is None or needed != needed
                                 else str(int(needed)))
            rows.append([(text, False) for text in cells])
        title = f"{group_title(dict(zip(GROUP_KEYS, key)))}: paired comparison against {reference}"
        grids.append(Grid(title, header, rows, label_columns=2,
                          wrap_columns=tuple(range(3, len(header)))))
    seeds = table.loc[table["level"] == "seeds", "seeds"]
    notes = [
        f"{reference} − method in percentage points; positive means {reference} is better. "
        f"runs ≥ 2: the training seeds both methods have, each seed's two runs tested on "
        f"identical episodes; the difference is the mean of the per-run differences (listed "
        f"under 'per run') ± 95% CI over runs (Student t, S − 1 degrees of freedom); p t: "
        f"paired t-test over the runs; p exact: the sign-flip permutation test over the "
        f"runs (no normality assumed; smallest possible p is 2/2^S"
        + (f": {_smallest_signflip(seeds)}" if len(seeds) else "") + "); won: in how many "
        f"of the S runs {reference} scored higher (a tie counts one half), of S.",
        _holm_words(len(seeds), len(table) - len(seeds)) + ". Verdict: ahead or behind where "
        "the paired t-test over runs is significant after Holm (p < 0.05), else not established; "
        "with one run, \"one run only:\" and what the episode-level test shows within that run "
        "(nothing over runs). A t-test over runs whose differences are all equal is undefined "
        "(–): no claim is made on it."]
    if (table["level"] != "seeds").any():
        notes.insert(1, "1 run (within one training run): one seed pairs, so the ± and p are the "
                     "paired t-test over that run's test episodes; they say nothing about another "
                     "training run.")
    if power is not None:
        notes.append(f"runs for {_points(power)}: training runs per method needed to detect a "
                     f"true difference of {_points(power)} with 80% power at α = 0.05 (paired t "
                     "over runs, α not adjusted for the other comparisons), from the measured "
                     "between-run SD of the differences.")
    grids[-1].footnotes = notes + [f"Seeds left out: {note}" for note in comparison.partial] + [
        f"Not compared: {reason}" for reason in comparison.refused]
    return grids


def summary_csv(summary) -> str:
    """The summary as tidy CSV (one row per cell), numbers rounded to 4 decimals."""
    return summary.round(4).to_csv(index=False)


def comparison_csv(comparison) -> str:
    table = comparison.table.assign(reference=comparison.reference)
    return table.to_csv(index=False, float_format="%.6g")


def report_grids(frame, reference=None, against=(), ci_method: str = "normal",
                 power: float | None = None) -> list[Grid]:
    """The accuracy tables of results rows ``frame``, the variance tables of its multi-seed cells,
    plus the paired comparison if ``reference``."""
    from bench.errors import BenchError
    from bench.report.compare import compare
    from bench.report.rows import with_episodes
    from bench.report.summary import summarize

    if power is not None and not reference:
        raise BenchError("--power needs --compare METHOD (it sizes the paired comparisons)")
    frame = with_episodes(frame)  # the per-episode files read once, for tables and comparison
    summary = summarize(frame, ci_method)
    grids = summary_grids(summary) + variance_grids(summary)
    if reference:
        grids += comparison_grids(compare(frame, reference, list(against), ci_method,
                                          strict=False, power=power))
    return grids


def report_text(frame, fmt: str = "markdown", reference=None, against=(),
                ci_method: str = "normal", power: float | None = None) -> str:
    """`bench report` as text: markdown or latex tables; csv gives the comparison if asked, else
    the per-cell summary."""
    from bench.errors import BenchError
    from bench.report.compare import compare
    from bench.report.summary import summarize

    if fmt not in ("markdown", "latex", "csv"):
        raise BenchError(f"no text rendering for format {fmt!r}; valid: markdown, latex, csv")
    if fmt == "csv":
        if reference:
            return comparison_csv(compare(frame, reference, list(against), ci_method,
                                          power=power))
        return summary_csv(summarize(frame, ci_method))
    return render(report_grids(frame, reference, against, ci_method, power), fmt)
