"""What several test files share: `bench` run in this process, stderr without the progress
lines `bench` prints there, and the repository's scripts imported as modules."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

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


def load_script(relative: str):
    """A script of the repository (``scripts/x.py``, ``benchmarks/x.py``) as a module."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
