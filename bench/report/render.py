"""A report table (``Grid``: title, header, rows of (text, bold), footnotes) and its renderings:
markdown, LaTeX and rich, plus the abbreviated labels of a narrow terminal."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field, replace


@dataclass
class Grid:
    """One rendered table: a title, a header, rows of (cell text, bold) and footnotes."""

    title: str
    header: list[str]
    rows: list[list[tuple[str, bool]]]
    footnotes: list[str] = field(default_factory=list)
    label_columns: int = 1  # leading columns of text (left-aligned); the rest are numbers
    # number columns that a narrow terminal may wrap between words (never inside a word)
    wrap_columns: tuple = ()
    sections: bool = False  # rows apart (rich: a blank line), for rows of several lines


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
        wraps = index in grid.wrap_columns
        if number and not wraps:  # numbers are never split; a long header goes on two lines
            widest = max([len(row[index][0]) for row in grid.rows] + [len(w) for w in name.split()])
            name = "\n".join(textwrap.wrap(name, widest))
        if wraps:  # between words only: as wide as its longest word at least
            widest = max(len(word) for row in grid.rows for word in row[index][0].split() or [""])
            table.add_column(escape(name), justify="right", overflow="fold",
                             min_width=max(widest, max(len(w) for w in name.split())))
            continue
        # labels fold where they must (a narrow terminal abbreviates long ones first, with a
        # legend: `abbreviations`), so two labels never look alike
        table.add_column(escape(name), justify="right" if number else "left", no_wrap=number,
                         overflow="ellipsis" if number else "fold")
    for row in grid.rows:
        table.add_row(*(f"[bold]{escape(text)}[/bold]" if bold else escape(text)
                        for text, bold in row), end_section=grid.sections)
    return table


LABEL_ROOM = 12  # longest method label kept whole on a narrow terminal (--format table)


NARROW = 120  # terminals narrower than this get abbreviated labels and a legend


def abbreviations(labels, width: int) -> dict[str, str]:
    """{long method label: short one} for a terminal ``width`` columns wide: on a narrow one,
    every label over LABEL_ROOM characters becomes its method's name and a letter
    (``cosine [train.precision=bf16]`` → ``cosine·a``), the letters given in sorted order per
    name, so one report abbreviates each label the same way in every table."""
    import re

    if width >= NARROW:
        return {}
    short, used = {}, {}
    for label in sorted(set(map(str, labels))):
        if len(label) <= LABEL_ROOM:
            continue
        name = re.split(r"[(\[ ]", label, maxsplit=1)[0] or label[:LABEL_ROOM]
        letter = used[name] = used.get(name, -1) + 1
        short[label] = f"{name}·{_letters(letter)}"
    return short


def _letters(index: int) -> str:
    """0 → a, 25 → z, 26 → aa, ..."""
    text = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        text = chr(ord("a") + rest) + text
    return text


def abbreviate(grids: list[Grid], short: dict[str, str]) -> list[Grid]:
    """The grids with each long method label in their label columns replaced by its short form
    (a cell that starts with the label: the summary's "label (backbone)" too)."""
    if not short:
        return grids
    longest_first = sorted(short, key=len, reverse=True)

    def cell(text: str) -> str:
        for label in longest_first:
            if text == label or text.startswith(label + " "):
                return short[label] + text[len(label):]
        return text

    return [replace(grid, rows=[[(cell(text), bold) if index < grid.label_columns
                                 else (text, bold) for index, (text, bold) in enumerate(row)]
                                for row in grid.rows]) for grid in grids]


def legend(short: dict[str, str]) -> str:
    """The key to the abbreviations, one per line."""
    return "\n".join(f"{abbreviated} = {label}" for label, abbreviated
                     in sorted(short.items(), key=lambda item: item[1]))


def render(grids: list[Grid], fmt: str) -> str:
    """Plain-text rendering (markdown or latex) of several grids, separated by blank lines."""
    renderer = {"markdown": to_markdown, "latex": to_latex}[fmt]
    return "\n\n".join(renderer(grid) for grid in grids) + "\n"
