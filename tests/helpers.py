"""What several test files share: `bench` run in this process, and stderr without the progress
lines `bench` prints there."""

import pytest

PROGRESS = ("train ", "test  ", "pretrain ", "preparing ", "cache of ", "wrote ")


def without_progress(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are not progress (a one-line error is then one line)."""
    return [line for line in stderr.strip().splitlines() if not line.startswith(PROGRESS)]


def run_main(argv, capsys, monkeypatch, cache):
    """`bench ARGV` in this process, with its data cache in ``cache``: (exit code, output)."""
    from bench.cli import main

    monkeypatch.setenv("FEWSHOT_BENCH_CACHE", str(cache))
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr()
