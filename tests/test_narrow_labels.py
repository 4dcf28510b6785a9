"""On a terminal under 120 columns, long method labels are abbreviated the same way in every
table of a report, with a legend, so two labels never read alike at 80 columns (two
`frn [train.sho…` rows once did)."""

import io

import numpy as np
from rich.console import Console
from test_seed_stats import write_cell

from bench.report import render, tables

LABELS = ["cosine [train.precision=bf16]", "cosine [train.precision=fp32]", "frn [train.shot=1]",
          "frn [train.shot=5]", "protonet(temperature=64)", "trm", "baselinepp"]


def test_abbreviations_are_the_name_and_a_letter_on_a_narrow_terminal_only():
    short = render.abbreviations(LABELS, 80)
    assert short == {"cosine [train.precision=bf16]": "cosine·a",
                     "cosine [train.precision=fp32]": "cosine·b",
                     "frn [train.shot=1]": "frn·a", "frn [train.shot=5]": "frn·b",
                     "protonet(temperature=64)": "protonet·a"}
    assert render.abbreviations(LABELS, 200) == {}
    assert render.legend(short).splitlines()[0] == "cosine·a = cosine [train.precision=bf16]"


def test_letters_go_on_past_z():
    labels = [f"m [train.seed_offset={i:02d}]" for i in range(28)]
    short = render.abbreviations(labels, 80)
    letters = [chr(ord("a") + i) for i in range(26)] + ["aa", "ab"]
    assert set(short.values()) == {f"m·{letter}" for letter in letters}


def test_every_table_of_a_report_reads_distinct_labels_at_80_columns(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.7, 300)
    for label, shift in (("frn [train.shot=1]", 0.0), ("frn [train.shot=5]", 0.02),
                         ("trm", 0.01)):
        for seed in range(2):
            write_cell(tmp_path, label, seed, np.clip(base + shift + rng.normal(0, 0.01, 300),
                                                      0, 1))
    from bench.results import load

    frame = load(tmp_path)
    grids = tables.report_grids(frame, "trm")
    short = render.abbreviations(frame["method"].unique(), 80)
    console = Console(width=80, record=True, file=io.StringIO())
    for grid in render.abbreviate(grids, short):
        console.print(render.to_rich(grid))
    text = console.export_text()
    assert "frn·a" in text and "frn·b" in text and "train.sho" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    summary = [line for line in text.splitlines() if line.lstrip().startswith("frn·")]
    assert len({line.split()[0] for line in summary}) == 2  # each label once per table row
