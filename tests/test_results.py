"""Results files across schema versions: a schema-1 file (no train_dataset column) still loads,
and appending to it rewrites it under today's columns without misaligning or losing a row."""

import csv
from pathlib import Path

import pytest

from bench import results
from bench.errors import BenchError

EXAMPLE = Path(__file__).parent / "data" / "example_results"


# the numbers every row must hold (bench.results.NUMERIC)
NUMBERS = {"way": 5, "shot": 1, "query": 15, "test_episodes": 600, "ci95": 1.0, "seed": 0}


def row(cell_id: str, dataset: str = "cub", train_dataset: str = "mini-imagenet") -> dict:
    values = {column: "" for column in results.COLUMNS} | NUMBERS
    return values | {"method": "protonet", "dataset": dataset, "train_dataset": train_dataset,
                     "acc": 50.0, "cell_id": cell_id,
                     "schema_version": results.SCHEMA_VERSION, "config": {"seed": 0}}


def write_schema_1(out: Path) -> None:
    old_columns = [column for column in results.COLUMNS
                   if column not in ("train_dataset", "precision")]  # both added since
    out.mkdir(parents=True)
    with open(out / "results.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=old_columns, lineterminator="\n")
        writer.writeheader()
        writer.writerow({column: "" for column in old_columns} | NUMBERS | {
            "method": "trm", "dataset": "omniglot", "acc": 98.5, "cell_id": "old",
            "schema_version": 1})


def test_checked_in_schema_1_example_loads_with_train_dataset_equal_to_dataset():
    frame = results.load(EXAMPLE)
    assert set(frame["schema_version"]) == {1}
    assert (frame["train_dataset"] == frame["dataset"]).all() and len(frame) == 12


def test_appending_to_a_schema_1_file_upgrades_it(tmp_path):
    write_schema_1(tmp_path / "out")
    assert results.append_row(tmp_path / "out", row("new"))
    header = (tmp_path / "out" / "results.csv").read_text().splitlines()[0]
    assert header.split(",") == results.COLUMNS
    frame = results.load(tmp_path / "out").set_index("cell_id")
    assert frame.loc["old", "train_dataset"] == "omniglot" and frame.loc["old", "acc"] == 98.5
    assert frame.loc["old", "schema_version"] == 1
    assert (frame.loc["new", "dataset"], frame.loc["new", "train_dataset"]) == (
        "cub", "mini-imagenet")
    assert frame.loc["new", "schema_version"] == results.SCHEMA_VERSION
    assert frame.loc["old", "train_data"] == ""  # not known for old rows: not checked
    assert results.finished_cell_ids(tmp_path / "out") == {"old", "new"}


def test_a_file_with_unknown_columns_is_not_appended_to(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text(",".join(results.COLUMNS + ["future"]) + "\n")
    with pytest.raises(BenchError, match="columns this fewshot-bench does not know \\(future\\)"):
        results.append_row(out, row("new"))


@pytest.mark.parametrize("garbage, reason", [
    ('garbage,"unterminated,1,2', "a quote on it is never closed, so line 4 was read into it"),
    ("garbage,1,2", "3 fields, the header has"),
])
def test_the_damaged_line_named_is_the_damaged_line(tmp_path, garbage, reason):
    """Garbage inserted as line 3: the error names line 3, also after an open quote (naming
    line 4, a good row, would have the advice delete it)."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(Path(__file__).parent / "data" / "example_results", copy)
    path = copy / "results.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2] + [garbage + "\n"] + lines[2:]))
    with pytest.raises(BenchError) as error:
        results.load(copy)
    message = str(error.value)
    assert "results.csv line 3 is damaged (" in message and reason in message
    assert message.endswith("delete or repair line 3")
