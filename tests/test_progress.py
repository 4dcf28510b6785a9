"""Progress bars of `bench run` on an 80-column terminal keep their counts and times."""

import io

from rich.console import Console

from bench.core.config import Cell, parse_method
from bench.execute.progress import bar_label, make_bars


def test_bars_fit_80_columns_with_counts_times_and_the_cell():
    console = Console(width=80, record=True, file=io.StringIO(), force_terminal=True)
    bars = make_bars(console=console)
    cell = Cell(parse_method("trm(attn_dim=128,temperature=fixed)"), "omniglot", (), 20, 5, 15,
                1000, 0)
    task = bars.add_task(f"train {bar_label(cell)}", total=4000, status="loss 1.234 val 97.5%")
    bars.update(task, completed=1230)
    console.print(bars.make_tasks_table(bars.tasks))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "1230/4000" in lines[0] and "0:00:00" in lines[0] and "-:--:--" in lines[0]
    assert "train 20-way 5-shot seed 0 trm(" in lines[0]
    assert "val 97.5%" in " ".join(lines)
