"""`bench report --html`: one self-contained, deterministic page, checked by parsing it with the
standard library, and rendered in headless Chromium where it is installed."""

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli.report import report_command
from bench.results import load

EXAMPLE = Path(__file__).parent / "data" / "example_results"


class Structure(HTMLParser):
    """What the page holds: tables and their body rows, figures and their cells, every URL."""

    def __init__(self):
        super().__init__()
        self.tables, self.rows, self.figures, self.svgs, self.urls = 0, [], [], 0, []
        self.run_cells, self.scripts, self.in_tbody = [], 0, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href", "xlink:href", "action", "data"):
            if attrs.get(name):
                self.urls.append(attrs[name])
        if tag == "table":
            self.tables += 1
        elif tag == "tbody":
            self.in_tbody = True
        elif tag == "tr" and self.in_tbody:
            self.rows.append(attrs)
            if "data-cell" in attrs:
                self.run_cells.append(attrs["data-cell"])
        elif tag == "figure":
            self.figures.append(attrs.get("data-cells", ""))
        elif tag == "svg":
            self.svgs += 1
        elif tag == "script":
            self.scripts += 1
        elif tag == "link":
            self.urls.append(attrs.get("href", ""))

    def handle_endtag(self, tag):
        if tag == "tbody":
            self.in_tbody = False


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    path = tmp_path_factory.mktemp("html") / "report.html"
    result = CliRunner().invoke(report_command, [str(EXAMPLE), "--compare", "trm", "--html",
                                                 str(path), "--format", "markdown"])
    assert result.exit_code == 0, result.output
    return path


def test_page_holds_every_cell_and_every_curve_and_fetches_nothing(page):
    text = page.read_text()
    parsed = Structure()
    parsed.feed(text)
    cells = set(load(EXAMPLE)["cell_id"])
    assert set(parsed.run_cells) == cells  # a run-table row for every cell of results.csv
    curves = [f for f in parsed.figures if f]
    logged = {cell for figure in curves for cell in figure.split()}
    assert cells <= logged  # every cell's log and episodes are in a figure
    assert parsed.tables >= 4 and parsed.svgs >= 7 and parsed.scripts == 1
    assert not [url for url in parsed.urls if not url.startswith("#")]
    assert "http://" not in text and "https://" not in text
    assert "paired comparison against trm" in text and "(2 runs)" in text


def test_the_same_results_give_the_same_bytes(page, tmp_path):
    again = tmp_path / "again.html"
    CliRunner().invoke(report_command, [str(EXAMPLE), "--compare", "trm", "--html", str(again),
                                        "--format", "markdown"])
    assert again.read_bytes() == page.read_bytes()


def test_an_unwritable_html_path_is_one_line(tmp_path, capsys, monkeypatch):
    from bench.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(EXAMPLE), "--html", str(blocker / "report.html")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: cannot write")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not CHROMIUM, reason="no Chromium here (Debian: apt-get install chromium; "
                                         ".ci/run installs it)")
@pytest.mark.parametrize("width", [1280, 800])
def test_page_renders_in_chromium_without_errors(page, tmp_path, width):
    """Headless Chromium loads the page from disk: no console error, every table and plot in the
    rendered DOM (--dump-dom runs the script first), and a screenshot at this width."""
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--enable-logging=stderr", "--v=0", f"--window-size={width},3000"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in
               line]
    assert not console, console
    rendered = Structure()
    rendered.feed(dom.stdout)
    source = Structure()
    source.feed(page.read_text())
    assert rendered.tables == source.tables and rendered.svgs == source.svgs
    shot = tmp_path / f"report-{width}.png"
    subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True,
                   timeout=120, check=True)
    assert shot.stat().st_size > 10_000
