"""`bench report --html FILE`: one self-contained HTML page of a results folder.

Everything a reader needs on one page, from the results files only: the accuracy tables (over
training runs where a cell has several, episode-level otherwise, labelled as the text tables are),
the variance tables, the paired comparison against ``--compare``, accuracy-vs-shot and bar plots,
every cell's learning curve (loss, training and validation accuracy), the distribution of the
per-episode accuracies of every cell, and a run table (commit, machine, precision, threads,
seeds, budget, wall times).

Self-contained: plots are inline SVG, the style and the few lines of table-sorting script are
inline, and nothing is fetched (no ``http``/``https`` reference anywhere). The page reads the same
with JavaScript off (the tables are plain HTML; the script only adds click-to-sort).
Deterministic: the same results give a byte-identical file (no timestamp of its own, SVG ids from
a fixed salt, no metadata dates), so it can be committed and diffed.
"""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

from bench.errors import BenchError

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px;
       padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.25rem; margin-top: 2rem;
     border-bottom: 1px solid #ccc; } h3 { font-size: 1.05rem; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.85rem; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.45rem; vertical-align: top; }
th { background: #f3f3f3; cursor: pointer; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.notes { font-size: 0.8rem; color: #444; max-width: 100ch; }
figure { margin: 0.75rem 0; max-width: 100%; overflow-x: auto; }
figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.8rem; color: #444; }
nav a { margin-right: 0.75rem; }
"""

# Click a header to sort its table by that column (numbers by value, text alphabetically); click
# again to reverse. Without JavaScript the tables stay as generated.
SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th, index) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var up = th.getAttribute("data-order") !== "up";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-order"); });
    th.setAttribute("data-order", up ? "up" : "down");
    var key = function (row) {
      var text = row.cells[index] ? row.cells[index].textContent.trim() : "";
      var number = parseFloat(text.replace("\\u2212", "-").replace("+", ""));
      return isNaN(number) ? text : number;
    };
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      var order = (typeof x === "number" && typeof y === "number") ? x - y
                  : String(x).localeCompare(String(y));
      return up ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""

RUN_COLUMNS = ["method", "dataset", "split", "way", "shot", "seed", "test_seed", "precision",
               "train_episodes", "best_episode", "train_way", "train_shot", "train_query",
               "train_seconds", "eval_seconds", "commit", "dirty", "cpu", "device", "threads",
               "torch", "cell_id"]


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def grid_html(grid, anchor: str = "") -> str:
    """A render.Grid as a sortable HTML table with its footnotes."""
    numbers = range(grid.label_columns, len(grid.header))
    head = "".join(f"<th>{esc(name)}</th>" for name in grid.header)
    body = []
    for row in grid.rows:
        cells = []
        for index, (text, bold) in enumerate(row):
            content = f"<strong>{esc(text)}</strong>" if bold else esc(text)
            kind = ' class="num"' if index in numbers else ""
            cells.append(f"<td{kind}>{content}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    notes = "".join(f"<li>{esc(note)}</li>" for note in grid.footnotes)
    ident = f' id="{esc(anchor)}"' if anchor else ""
    return (f"<h3{ident}>{esc(grid.title)}</h3>\n<div class=\"scroll\"><table class=\"sortable\">"
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body)
            + f"\n</tbody></table></div>\n<ul class=\"notes\">{notes}</ul>\n")


def svg_of(figure) -> str:
    """The figure as inline SVG markup: fixed ids, no date, no XML prolog (deterministic)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "fewshot-bench", "svg.fonttype": "path"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = re.sub(r"<\?xml[^>]*\?>\s*", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text)
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)  # RDF licence block
    # Namespace declarations are identifiers, never fetched, and HTML's parser knows inline SVG
    # without them; dropped so that the page holds no http(s) string at all.
    return re.sub(r'\s+xmlns(:xlink)?="http[^"]*"', "", text)


def figure_html(figure, caption: str, cells=()) -> str:
    data = f' data-cells="{esc(" ".join(cells))}"' if cells else ""
    return (f"<figure{data}>{svg_of(figure)}<figcaption>{esc(caption)}</figcaption></figure>\n")


def episodes_figure(frame, title: str, colors: dict):
    """Per-episode accuracies of every method of one (dataset, way, shot): one box per method
    (all its runs' episodes), the mean as a dot."""
    import numpy as np

    from bench.report.plots import _figure

    methods = sorted(frame["method"].unique())
    figure = _figure(max(4.0, 1.0 + 0.8 * len(methods)), 3.4)
    axes = figure.add_subplot()
    data = [np.concatenate([e for e in frame[frame["method"] == m]["episodes"]
                            if e is not None]) * 100 for m in methods]
    boxes = axes.boxplot(data, widths=0.6, showfliers=False, patch_artist=True)
    for patch, method in zip(boxes["boxes"], methods):
        patch.set_facecolor(colors[method])
        patch.set_alpha(0.5)
    axes.scatter(range(1, len(methods) + 1), [d.mean() for d in data], color="black", s=12,
                 zorder=3, label="mean")
    axes.set_xticks(range(1, len(methods) + 1), methods, rotation=30, ha="right")
    axes.set_ylabel("accuracy of one episode (%)")
    axes.set_title(title)
    axes.grid(True, axis="y", alpha=0.3)
    return figure


def run_table(frame) -> str:
    columns = [column for column in RUN_COLUMNS if column in frame.columns]
    rows = frame.sort_values(["dataset", "way", "shot", "method", "seed", "cell_id"])
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for _, row in rows.iterrows():
        cells = []
        for column in columns:
            value = row[column]
            if isinstance(value, float):
                value = "" if value != value else f"{value:.2f}".rstrip("0").rstrip(".")
            number = column in ("way", "shot", "seed", "test_seed", "train_episodes",
                                "best_episode", "train_seconds", "eval_seconds", "threads")
            kind = ' class="num"' if number else ""
            cells.append(f"<td{kind}>{esc(value)}</td>")
        body.append(f"<tr data-cell=\"{esc(row['cell_id'])}\">" + "".join(cells) + "</tr>")
    return ("<div class=\"scroll\"><table class=\"sortable\" id=\"runs\"><thead><tr>" + head
            + "</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody></table></div>\n")


def build_html(frame, title: str, reference: str | None = None, against=(),
               ci_method: str = "normal") -> str:
    """The page for results rows ``frame`` (``bench.results.load``)."""
    from matplotlib import pyplot  # noqa: F401  (registers the backends savefig needs)

    from bench.report import plots, tables
    from bench.report.compare import compare
    from bench.report.rows import CELL_KEYS, GROUP_KEYS, pooling_rows, with_episodes
    from bench.report.summary import summarize

    rows = with_episodes(frame)  # the per-episode files read once for the whole page
    summary = summarize(rows, ci_method)
    colors = plots.method_colors(summary["method"])
    parts = [f"<h1>{esc(title)}</h1>",
             f"<p>{len(rows)} results rows (training runs × cells) from "
             f"{esc(', '.join(sorted(set(map(str, frame['source_dir'].map(_short))))))}. "
             "Generated by <code>bench report --html</code> from the results files only.</p>",
             '<nav><a href="#accuracy">accuracy</a><a href="#comparison">comparison</a>'
             '<a href="#plots">plots</a><a href="#curves">learning curves</a>'
             '<a href="#episodes">per-episode accuracies</a><a href="#unfinished">unfinished</a>'
             '<a href="#runs-section">runs</a></nav>',
             '<h2 id="accuracy">Accuracy</h2>']
    parts += [grid_html(grid) for grid in tables.summary_grids(summary)]
    parts += [grid_html(grid) for grid in tables.variance_grids(summary)]
    parts.append('<h2 id="comparison">Paired comparison</h2>')
    if reference:
        comparison = compare(rows, reference, list(against), ci_method, strict=False)
        parts += [grid_html(grid) for grid in tables.comparison_grids(comparison)]
    else:
        parts.append("<p>None asked for: pass <code>--compare METHOD</code>.</p>")
    parts.append('<h2 id="plots">Accuracy plots</h2>')
    for key, _ in summary.groupby(GROUP_KEYS, sort=True):
        key = dict(zip(GROUP_KEYS, key))
        figure = plots.accuracy_vs_shots_figure(summary, key, colors)
        parts.append(figure_html(figure, f"{key['dataset']} {key['way']}-way: accuracy vs "
                                         "shots, mean ± the tables' 95% CI"))
    for (way, shot), _ in summary.groupby(["way", "shot"], sort=True):
        figure = plots.bars_figure(summary, {"way": way, "shot": shot}, colors)
        parts.append(figure_html(figure, f"{way}-way {shot}-shot: one bar per method"))
    parts.append('<h2 id="curves">Learning curves</h2>')
    parts += curve_section(pooling_rows(frame, CELL_KEYS), summary, colors)
    parts.append('<h2 id="episodes">Per-episode accuracies</h2>')
    keys = GROUP_KEYS + ["shot"]
    present = rows[[e is not None for e in rows["episodes"]]]
    for key, cell in present.groupby(keys, sort=True):
        key = dict(zip(keys, key))
        name = _cell_name(key)
        parts.append(figure_html(episodes_figure(cell, name, colors),
                                 f"{name}: accuracy of each test episode, all runs of a method "
                                 "together (box: quartiles, whiskers: 1.5 IQR, dot: mean)",
                                 sorted(cell["cell_id"])))
    parts.append('<h2 id="unfinished">Unfinished trainings</h2>')
    parts += unfinished_section(sorted(set(frame["source_dir"])), colors)
    parts.append('<h2 id="runs-section">Runs</h2>')
    parts.append(run_table(rows))
    body = "\n".join(parts)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n"
            f"<script>{SCRIPT}</script>\n</body></html>\n")


def unfinished_section(folders, colors) -> list[str]:
    """The trainings still running or stopped unfinished (``bench.core.running``): how far each got,
    and its curve so far."""
    from bench.core.running import describe, read_running
    from bench.report import plots

    found = read_running(folders)
    if not found:
        return ["<p>None: every training of these results has finished.</p>"]
    parts = ["<ul>" + "".join(f"<li>{esc(describe(item))}</li>" for item in found) + "</ul>"]
    for item in found:
        method = item["about"].get("method", item["training_id"])
        color = colors.get(method, "black")
        figure = plots.curves_figure({method: [item["log"]]}, item["about"].get("label", ""),
                                     {method: color}, train_accuracy=True)
        parts.append(figure_html(figure, f"{describe(item)} (so far)"))
    return parts


def curve_section(frame, summary, colors) -> list[str]:
    """One figure per (dataset, way, shot): loss and validation accuracy of every cell there, and
    the training accuracy; cells without a log are named."""
    from bench.report import plots
    from bench.report.rows import GROUP_KEYS

    logs = plots.read_logs(frame)
    keys = GROUP_KEYS + ["shot"]
    parts = []
    for key, cell in frame.groupby(keys, sort=True):
        key = dict(zip(keys, key))
        name = _cell_name(key)
        logged = cell[cell["cell_id"].isin(logs)]
        if len(logged):
            cell_logs = {m: [logs[c] for c in r["cell_id"]] for m, r in logged.groupby("method")}
            figure = plots.curves_figure(cell_logs, name, colors, train_accuracy=True)
            parts.append(figure_html(figure, f"{name}: every cell's training log",
                                     sorted(logged["cell_id"])))
        missing = sorted(set(cell["cell_id"]) - set(logs))
        if missing:
            methods = sorted(cell[cell["cell_id"].isin(missing)]["method"].unique())
            parts.append(f'<p class="notes">{esc(name)}: no training log for '
                         f"{esc(', '.join(methods))} (methods without episodic training, or "
                         "logs not copied).</p>")
    return parts


def _cell_name(key: dict) -> str:
    split = f" ({key['split']})" if key.get("split") else ""
    return f"{key['dataset']}{split} {key['way']}-way {key['shot']}-shot"


def _short(path: str) -> str:
    parts = Path(path).parts
    return "/".join(parts[-3:]) if len(parts) > 3 else str(path)


def write_html(frame, path, reference=None, against=(), ci_method: str = "normal") -> Path:
    """Write the page to ``path`` (a one-line BenchError where it cannot be written)."""
    from bench.results import atomic_write_text

    path = Path(path)
    sources = sorted(set(frame["source_dir"].map(_short)))
    title = "fewshot-bench report: " + ", ".join(sources)
    text = build_html(frame, title, reference, against, ci_method)
    try:
        atomic_write_text(path, text)
    except OSError as error:
        raise BenchError(f"cannot write {path}: {error.strerror or error}; pass --html a file in "
                         "a folder you can write to") from None
    return path
