"""The `bench report` and `bench check` commands: thin wrappers over bench.report.tables,
bench.report.plots and bench.report.check. Both only read results. pandas, scipy and matplotlib
are imported inside the commands so that `bench --help` stays fast; torch is never imported.
"""

from __future__ import annotations

from pathlib import Path

import click

DEFAULT_RESULTS = "runs"  # `bench run --out` default


@click.command("report")
@click.argument("results", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "fmt", default="table", show_default=True,
              type=click.Choice(["table", "markdown", "latex", "csv"]),
              help="table: rich on the terminal; markdown, latex, csv: plain text to pipe.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write figures (PNG and SVG) into this directory.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write one self-contained HTML page (tables, comparisons, plots, "
                   "learning curves, per-episode distributions, runs) to this file.")
@click.option("--compare", "reference", metavar="METHOD",
              help="Paired comparison of every other method against METHOD on the same episodes.")
@click.option("--against", multiple=True, metavar="METHOD",
              help="With --compare: only these methods (repeatable).")
@click.option("--ci", "ci_method", default="normal", show_default=True,
              type=click.Choice(["normal", "t"]),
              help="Episode-level 95% CI: 1.96·σ/√n or Student t (over runs it is always t).")
@click.option("--power", default=None, metavar="POINTS",
              help="With --compare: training runs needed to detect a difference of POINTS at 80% "
                   "power, α = 0.05, from the measured between-run spread of each difference.")
@click.option("--answer", "answer", default=None, metavar="METHOD",
              help="Instead of tables: the answer page (markdown) — METHOD against every other "
                   "method, one section per results folder, with the CI over training runs, "
                   "Holm's p, the runs, the verdict and what else differs.")
@click.option("--answer-only", default=None, metavar="NAMES",
              help="With --answer: keep only these methods (comma-separated names), e.g. "
                   "protonet,cosine.")
def report_command(results, fmt, plots_dir, html_path, reference, against, ci_method,
                   power, answer, answer_only) -> None:
    """Tables (and figures) from results files or run directories [default: runs]; never runs.

    One table per dataset and way: methods as rows, shots as columns, accuracy ± 95% CI; the best
    of a column is bold when its lead over the runner-up is significant (p < 0.05).
    """
    from bench.errors import BenchError
    from bench.report import render, tables
    from bench.results import load

    if answer_only and not answer:
        raise BenchError("--answer-only needs --answer METHOD")
    if answer:
        print_answer(results, answer, answer_only)
        return
    if against and not reference:
        raise BenchError("--against needs --compare METHOD")
    power = power_option(power)
    if power is not None and not reference:
        raise BenchError("--power needs --compare METHOD (it sizes the paired comparisons)")
    frame = load(list(results) or [DEFAULT_RESULTS])
    if plots_dir is not None:  # a folder that cannot take figures fails before any table
        from bench.report.plots import writable_dir

        writable_dir(plots_dir)
    if fmt == "table":
        from rich.console import Console

        console = Console()
        if not console.is_terminal:  # a log file or pipe: room for the comparison columns
            console = Console(width=120)
        grids = tables.report_grids(frame, reference, against, ci_method, power)
        short = render.abbreviations(with_labels(frame)["method"].unique(), console.width)
        for grid in render.abbreviate(grids, short):
            console.print(render.to_rich(grid))
        if short:  # a narrow terminal: long labels were shortened the same way in every table
            console.print("Labels:\n" + render.legend(short), markup=False, highlight=False)
    else:
        click.echo(tables.report_text(frame, fmt, reference, against, ci_method, power),
                   nl=False)
    from bench.core.running import describe, read_running

    for item in read_running(sorted(set(frame["source_dir"]))):  # a long run being watched
        click.echo(f"unfinished: {describe(item)}", err=True)
    if html_path is not None:
        from bench.report.html import write_html

        write_html(frame, html_path, reference, against, ci_method)
        click.echo(f"wrote {html_path}", err=True)
    if plots_dir is not None:
        from bench.report.plots import write_plots

        paths = write_plots(frame, plots_dir, ci_method)
        click.echo(f"wrote {len(paths)} figure files to {plots_dir}", err=True)


def print_answer(folders, reference: str, only: str | None) -> None:
    """`bench report --answer`: the page on stdout, quoting the command that made it."""
    import shlex

    from bench.errors import BenchError
    from bench.report.answer import answer_page, check_folders

    if not folders:
        raise BenchError("--answer needs the results folders, e.g. bench report "
                         "results/reference/mini-fair --answer trm")
    names = [name.strip() for name in only.split(",") if name.strip()] if only else None
    if only is not None and not names:
        raise BenchError(f"--answer-only {only!r} names no method; write e.g. protonet,cosine")
    command = " ".join(["bench report", *map(shlex.quote, map(str, folders)), "--answer",
                        shlex.quote(reference)]
                       + (["--answer-only", shlex.quote(",".join(names))] if names else []))
    click.echo(answer_page(check_folders(folders), reference, command, names), nl=False)


def with_labels(frame):
    """The rows with the method labels the tables use (experiments told apart)."""
    from bench.report.rows import CELL_KEYS, pooling_rows

    return pooling_rows(frame, CELL_KEYS)


def power_option(text) -> float | None:
    """--power POINTS: a positive, finite number of accuracy points (None: not asked)."""
    import math

    from bench.errors import BenchError

    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise BenchError(f"--power {text!r} is not a number; write the difference to detect in "
                         "points, e.g. --power 1.0") from None
    if not (math.isfinite(value) and value > 0):
        raise BenchError(f"--power must be a positive number of points, got {text}; write e.g. "
                         "--power 1.0")
    return value


@click.command("check")
@click.option("--baseline", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Committed baseline results CSV, e.g. results/baselines/ci.csv.")
@click.option("--results", "results", multiple=True, type=click.Path(path_type=Path),
              help="Fresh results file or run directory (repeatable) "
                   f"[default: {DEFAULT_RESULTS}].")
@click.option("--update", is_flag=True,
              help="Rewrite the baseline from the fresh results instead (prints what changes; "
                   "refuses to drop or worsen a cell without --accept-losses).")
@click.option("--accept-losses", is_flag=True,
              help="With --update: replace the baseline even where cells are dropped or worse.")
@click.option("--allow-missing", is_flag=True,
              help="Baseline cells absent from the fresh results warn instead of failing.")
@click.option("--tolerance", default=0.0, show_default=True, type=float,
              help="Extra points of drop allowed beyond the CIs (training variance).")
@click.pass_context
def check_command(ctx, baseline, results, update, accept_losses, allow_missing,
                  tolerance) -> None:
    """Exit 1 if a method's accuracy fell below its baseline by more than its noise allows.

    Per (method, dataset, split, backbone, way, shot): with a baseline of S ≥ 2 seeds, fail when
    baseline − new > t(0.975, S−1)·sd_runs·sqrt(1/S + 1/S_new) (the baseline's between-run
    spread); with one seed, when baseline − new > sqrt(ci_baseline² + ci_new²) (episode CIs); all
    in percent. A baseline cell without a fresh result fails too.
    """
    from bench.report import check
    from bench.results import load

    fresh = load(list(results) or [DEFAULT_RESULTS])
    if update:
        count, changes = check.update_baseline(fresh, baseline, accept_losses, tolerance)
        for line in changes:
            click.echo(line)
        click.echo(f"baseline {baseline} rewritten: {count} rows from "
                   f"{', '.join(map(str, results or [DEFAULT_RESULTS]))}")
        return
    if accept_losses:
        from bench.errors import BenchError

        raise BenchError("--accept-losses applies to --update; add --update or drop it")
    verdicts = check.check(check.load_baseline(baseline), fresh, allow_missing, tolerance)
    for verdict in verdicts:
        click.echo(verdict.describe())
    failures = check.failed(verdicts)
    counts = check.counts(verdicts)
    if failures:
        click.echo(f"bench check: {len(failures)} of {len(verdicts)} cells failed against "
                   f"{baseline} (rule: drop > {check.rule_words(verdicts)} + {tolerance:g}); "
                   f"{counts}", err=True)
        ctx.exit(1)
    if not check.compared(verdicts):
        click.echo(f"bench check: no cell compared: none of the {len(verdicts)} cells is in both "
                   f"{baseline} and the fresh results ({counts}); check --baseline and --results",
                   err=True)
        ctx.exit(1)
    click.echo(f"bench check: every compared cell within its CIs of {baseline} ({counts})",
               err=True)
