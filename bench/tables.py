"""Rendering of `bench report` tables: markdown, LaTeX, CSV (plain text, pipeable) and rich.

Input is what ``bench.report`` computes (``summarize``'s frame, a ``Comparison``); nothing here
reads files or does statistics.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import dataclass, field

from bench.report import GROUP_KEYS

FORMATS = ("table", "markdown", "latex", "csv")
CI_WORDS = {"normal": "1.96 x SD / sqrt(N)", "t": "t(0.975, N-1) x SD / sqrt(N)"}


@dataclass
class Grid:
    """One rendered table: a title, a header, rows of (cell text, bold) and footnotes."""

    title: str
    header: list[str]
    rows: list[list[tuple[str, bool]]]
    footnotes: list[str] = field(default_factory=list)
    label_columns: int = 1  # leading columns of text (left-aligned); the rest are numbers


def group_title(key: dict) -> str:
    extra = ", ".join(str(key[k]) for k in ("split",) if key.get(k))
    return f"{key['dataset']}, {key['way']}-way" + (f" ({extra})" if extra else "")


def _seeds(count: int) -> str:
    return f"{count} seed" + ("s" if count != 1 else "")


def _counts_note(table) -> str:
    counts = Counter(zip(table["n_episodes"], table["n_seeds"]))
    (episodes, seeds), _ = counts.most_common(1)[0]
    note = f"N = {episodes} episodes from {_seeds(seeds)} per cell"
    exceptions = [f"{row.method} {row.shot}-shot: {row.n_episodes} ({_seeds(row.n_seeds)})"
                  for row in table.itertuples()
                  if (row.n_episodes, row.n_seeds) != (episodes, seeds)]
    return note + (", except " + "; ".join(exceptions) if exceptions else "") + "."


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
                mark = "†" if row and getattr(row, "from_csv", False) else ""
                cells.append((f"{row.acc:.2f} ± {row.ci95:.2f}{mark}", bool(row.bold)) if row
                             else ("-", False))
            rows.append(cells)
        ci_method = table["ci_method"].iloc[0]
        footnotes = [
            f"Mean accuracy (%) ± 95% CI ({ci_method}: {CI_WORDS[ci_method]}) over the N test "
            "episodes of all seeds pooled. " + _counts_note(table),
            ("Bold: best in its column and significantly better than the runner-up (p < 0.05, "
             "paired t-test on the same episodes; non-overlapping CIs where episodes differ)."),
        ]
        if "from_csv" in table and table["from_csv"].any():
            footnotes.append("†: per-episode files missing; acc and ci95 of results.csv (seeds "
                             "combined as in `bench check`), not pooled, not paired.")
        grids.append(Grid(group_title(dict(zip(GROUP_KEYS, key))),
                          ["method"] + [f"{shot}-shot" for shot in shots], rows, footnotes))
    return grids


def format_p(p: float) -> str:
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def comparison_grids(comparison) -> list[Grid]:
    """The paired differences against the reference, one Grid per (dataset, split, way);
    refused pairs become footnotes of the last one."""
    reference, table = comparison.reference, comparison.table
    header = ["shot", "method", f"{reference} − method (points)", "p t-test", "p Wilcoxon",
              "p t-test Holm", "p Wilcoxon Holm", "n"]
    if not len(table):
        return [Grid(f"Paired comparison against {reference}: nothing could be paired", header,
                     [], [f"Not compared: {reason}" for reason in comparison.refused], 2)]
    grids = []
    for key, group in table.groupby(GROUP_KEYS, sort=True):
        rows = [[(text, False) for text in (
            str(row.shot), row.method, f"{row.diff:+.2f} ± {row.ci95:.2f}", format_p(row.t_p),
            format_p(row.wilcoxon_p), format_p(row.t_p_holm), format_p(row.wilcoxon_p_holm),
            str(row.n))] for row in group.itertuples()]
        title = f"{group_title(dict(zip(GROUP_KEYS, key)))}: paired comparison against {reference}"
        grids.append(Grid(title, header, rows, label_columns=2))
    grids[-1].footnotes = [
        (f"Paired on identical episodes: mean accuracy difference {reference} − method in "
         f"percentage points ± 95% CI; positive means {reference} is better. p: paired t-test and "
         f"Wilcoxon signed-rank test; Holm: adjusted over all {len(table)} comparisons of this "
         "report. n: paired episodes."),
        *(f"Not compared: {reason}" for reason in comparison.refused)]
    return grids


def to_markdown(grid: Grid) -> str:
    def line(cells):
        return "| " + " | ".join(cells) + " |"

    body = [line(f"**{text}**" if bold else text for text, bold in row) for row in grid.rows]
    align = ["---"] * grid.label_columns + ["---:"] * (len(grid.header) - grid.label_columns)
    notes = "\n".join(f"- {note}" if len(grid.footnotes) > 1 else note for note in grid.footnotes)
    return "\n".join([f"### {grid.title}", "", line(grid.header), line(align), *body, "", notes])


def latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"),
                          ("#", r"\#"), ("_", r"\_"), ("{", r"\{"), ("}", r"\}")):
        text = text.replace(char, escaped)
    return text.replace("±", r"$\pm$").replace("−", "$-$")


def to_latex(grid: Grid) -> str:
    def cell(text, bold):
        text = latex_escape(text)
        return rf"\textbf{{{text}}}" if bold else text

    lines = [r"\begin{table}[t]", r"\centering",
             rf"\caption{{{latex_escape(grid.title)}. {latex_escape(' '.join(grid.footnotes))}}}",
             r"\begin{tabular}{" + "l" * grid.label_columns
             + "r" * (len(grid.header) - grid.label_columns) + "}", r"\toprule",
             " & ".join(latex_escape(h) for h in grid.header) + r" \\", r"\midrule"]
    lines += [" & ".join(cell(text, bold) for text, bold in row) + r" \\" for row in grid.rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def to_rich(grid: Grid):
    """A rich.table.Table of the grid (markup in cell texts escaped)."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    # No vertical rules: an 8-column comparison then fits 80 columns without splitting a number.
    table = Table(title=escape(grid.title), caption=escape("\n".join(grid.footnotes)),
                  caption_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    for index, name in enumerate(grid.header):
        number = index >= grid.label_columns
        if number:  # numbers are never split; a long header goes on two lines instead
            widest = max([len(row[index][0]) for row in grid.rows] + [len(w) for w in name.split()])
            name = "\n".join(textwrap.wrap(name, widest))
        table.add_column(escape(name), justify="right" if number else "left", no_wrap=number)
    for row in grid.rows:
        table.add_row(*(f"[bold]{escape(text)}[/bold]" if bold else escape(text)
                        for text, bold in row))
    return table


def render(grids: list[Grid], fmt: str) -> str:
    """Plain-text rendering (markdown or latex) of several grids, separated by blank lines."""
    renderer = {"markdown": to_markdown, "latex": to_latex}[fmt]
    return "\n\n".join(renderer(grid) for grid in grids) + "\n"


def summary_csv(summary) -> str:
    """The summary as tidy CSV (one row per cell), numbers rounded to 4 decimals."""
    return summary.round(4).to_csv(index=False)


def comparison_csv(comparison) -> str:
    table = comparison.table.assign(reference=comparison.reference)
    return table.to_csv(index=False, float_format="%.6g")


def report_grids(frame, reference=None, against=(), ci_method: str = "normal") -> list[Grid]:
    """The accuracy tables of results rows ``frame``, plus the paired comparison if ``reference``."""
    from bench.report import compare, summarize

    grids = summary_grids(summarize(frame, ci_method))
    if reference:
        grids += comparison_grids(compare(frame, reference, list(against), ci_method,
                                          strict=False))
    return grids


def report_text(frame, fmt: str = "markdown", reference=None, against=(),
                ci_method: str = "normal") -> str:
    """`bench report` as text: markdown or latex tables; csv gives the comparison if asked, else
    the per-cell summary."""
    from bench.errors import BenchError
    from bench.report import compare, summarize

    if fmt not in ("markdown", "latex", "csv"):
        raise BenchError(f"no text rendering for format {fmt!r}; valid: markdown, latex, csv")
    if fmt == "csv":
        if reference:
            return comparison_csv(compare(frame, reference, list(against), ci_method))
        return summary_csv(summarize(frame, ci_method))
    return render(report_grids(frame, reference, against, ci_method), fmt)
