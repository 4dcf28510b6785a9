"""Results files written before a column existed still take new rows, aligned."""

import csv

from bench import results


def test_old_header_is_upgraded_before_a_row_is_appended(tmp_path):
    old_columns = [column for column in results.COLUMNS if column != "precision"]
    with open(tmp_path / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=old_columns, lineterminator="\n")
        writer.writeheader()
        writer.writerow({column: f"old-{column}" for column in old_columns} | {
            "schema_version": results.SCHEMA_VERSION})
    row = {column: f"new-{column}" for column in results.COLUMNS} | {
        "schema_version": results.SCHEMA_VERSION}
    assert results.append_row(tmp_path, row)
    frame = results.load(tmp_path)
    assert list(frame.columns[: len(results.COLUMNS)]) == results.COLUMNS
    assert frame["cell_id"].tolist() == ["old-cell_id", "new-cell_id"]
    assert frame["precision"].isna().tolist() == [True, False]
    assert frame["config"].tolist() == ["old-config", "new-config"]
