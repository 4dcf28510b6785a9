"""What a new user hits: one-line errors (exit 2, no traceback) for paths and sizes that cannot
work."""

import pytest

from bench.cli import main


def run(argv, capsys, monkeypatch, cache):
    monkeypatch.setenv("FEWSHOT_BENCH_CACHE", str(cache))
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr()


@pytest.mark.parametrize("where", ["file", "/proc/figs"])
def test_plots_where_no_figure_can_go_is_one_line_before_any_table(tmp_path, capsys, monkeypatch,
                                                                   where):
    from pathlib import Path

    example = Path(__file__).parent / "data" / "example_results"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = str(blocker / "figs") if where == "file" else where
    code, captured = run(["report", str(example), "--plots", target], capsys, monkeypatch,
                         tmp_path)
    assert code == 2
    assert captured.err.startswith(f"error: cannot write figures to {target}")
    assert captured.err.count("\n") == 1 and captured.out == ""


def test_a_model_too_large_to_allocate_is_one_line(tmp_path, capsys, monkeypatch, glyph_cache):
    code, captured = run(["run", "--methods", "relationnet(loss=ce,hidden=1000000000000)",
                          "--shots", "1", "--train-episodes", "1", "--test-episodes", "2",
                          "--threads", "1", "-D", "instances=8", "--query", "5", "--train-query", "5",
                          "--out", str(tmp_path)],
                         capsys, monkeypatch, glyph_cache)
    assert code == 2
    assert "relationnet(loss=ce,hidden=1000000000000) cannot be built on this machine" in \
        captured.err
    assert captured.err.count("\n") == 1
