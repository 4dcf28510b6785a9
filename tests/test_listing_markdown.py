"""`bench list --format markdown`: the tables of methods, datasets and presets generated from the
registries and bench/plan/presets.py, and the committed copies of them in docs/methods.md and
docs/presets.md (scripts/list_tables.py fills those blocks)."""

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import load_script

from bench.cli import cli, listing, main
from bench.cli.run import run_command
from bench.plan.presets import PRESETS
from bench.registry import DATASETS, METHODS

ROOT = Path(__file__).resolve().parents[1]


def list_tables():
    return load_script("scripts/list_tables.py")


def bench_list(*args: str) -> str:
    result = CliRunner().invoke(cli, ["list", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def rows(table: str) -> list[list[str]]:
    """The cells of each line of a Markdown table, split on unescaped pipes."""
    lines = table.strip().splitlines()
    return [[cell.strip() for cell in line.replace(r"\|", "\0").strip("|").split("|")]
            for line in lines]


def first_column(table: str) -> list[str]:
    return [row[0].strip("`") for row in rows(table)[2:]]


@pytest.mark.parametrize("name", ["methods", "presets"])
def test_the_committed_block_is_current(name):
    script = list_tables()
    generated = bench_list("--format", "markdown", "--only", name)
    assert script.committed(name) == generated, (
        f"{script.BLOCKS[name][0]} is not current: run python scripts/list_tables.py")


@pytest.mark.parametrize("name", ["methods", "presets"])
def test_filling_a_current_block_changes_nothing(name):
    script = list_tables()
    path = ROOT / script.BLOCKS[name][0]
    assert script.filled(name, script.committed(name)) == path.read_text(encoding="utf-8")


def test_every_method_dataset_and_preset_has_one_row():
    assert first_column(listing.markdown("methods")) == METHODS.names()
    assert first_column(listing.markdown("datasets")) == DATASETS.names()
    assert first_column(listing.markdown("presets")) == list(PRESETS)


def test_every_row_has_the_header_s_columns():
    for name in listing.TABLES:
        table = rows(listing.markdown(name))
        assert set(table[1]) == {"---"}
        assert {len(row) for row in table} == {len(table[0])}, name


def test_the_full_output_holds_each_table_under_a_heading():
    text = bench_list("--format", "markdown")
    for name in listing.TABLES:
        assert f"## {name.capitalize()}\n\n{listing.markdown(name)}" in text


def test_markdown_is_deterministic_and_names_no_local_path():
    text = bench_list("--format", "markdown")
    assert text == bench_list("--format", "markdown")
    for local in (str(ROOT), os.path.expanduser("~"), "/tmp/", "site-packages"):
        assert local not in text


def test_parameters_show_their_defaults():
    table = listing.markdown("methods")
    [trm] = [row for row in rows(table) if row[0] == "`trm`"]
    assert "`attn_dim=64`" in trm[3] and "`normalize=dual`" in trm[3]
    [protonet] = [row for row in rows(table) if row[0] == "`protonet`"]
    assert "Snell" in protonet[2]  # the paper, from the module's docstring


def test_pipes_and_backticks_are_escaped():
    assert listing.md_cell("a | b\n  c") == r"a \| b c"
    assert listing.md_code("x|y") == r"`x\|y`"
    assert listing.md_code("a `b` c") == "``a `b` c``"
    assert listing.md_code("`b`") == "`` `b` ``"


@dataclass(frozen=True)
class PipeConfig:
    mode: str = field(default="a", metadata={"help": "a | b | c"})
    flag: bool = field(default=False, metadata={"help": ""})


class PipeMethod:
    """A method whose texts hold pipes."""

    description = "logits | scores"
    paper = "Someone | Other, 2024"
    transductive = True
    fits_at_test_time = False
    requires_pretraining = False
    Config = PipeConfig


def test_pipes_in_a_plugin_s_texts_keep_the_table_whole(monkeypatch):
    METHODS.names()  # the built-in ones loaded first
    monkeypatch.setitem(METHODS._entries, "pipe|method", PipeMethod)
    table = listing.markdown("methods")
    [row] = [row for row in rows(table) if "pipe" in row[0]]
    assert len(row) == 4
    assert row[0] == "`pipe\0method`"
    assert row[1].startswith("logits \0 scores [transductive")
    assert row[2] == "Someone \0 Other, 2024"
    assert row[3] == "`mode=a`: a \0 b \0 c<br>`flag=false`"


def test_preset_settings_are_the_bench_run_flags_that_set_it():
    for name, preset in PRESETS.items():
        settings = listing.preset_settings(preset["options"])
        args = [token for setting in settings for token in shlex.split(setting)]
        params = run_command.make_context("run", args).params
        for key, value in preset["options"].items():
            assert params[key] == value, (name, key)


@pytest.mark.parametrize("args, option", [(["--format", "html"], "--format"),
                                          (["--only", "backbones"], "--only")])
def test_a_bad_option_value_is_one_line_and_exit_2(args, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["list", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: Invalid value for '{option}'")


def test_the_rich_output_stays_the_default():
    text = bench_list()
    for title in ("methods", "datasets", "presets"):
        assert title in text
    assert "|---|" not in text
    only = bench_list("--only", "methods")
    assert "protonet" in only and "omniglot-snell" not in only
