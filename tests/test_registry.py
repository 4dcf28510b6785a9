"""Registries, plugin entry points, method specs and config errors."""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.core.config import parse_methods
from bench.errors import BenchError
from bench.registry import DATASETS, METHODS, Registry, build_config

REPO = Path(__file__).resolve().parents[1]


def test_builtin_methods_and_datasets_are_registered():
    assert {"trm", "protonet", "cosine"} <= set(METHODS.names())
    assert "glyphs" in DATASETS.names()


def test_unknown_name_lists_valid_ones():
    with pytest.raises(BenchError, match=r"unknown method 'nope'; valid methods: .*protonet"):
        METHODS.get("nope")


def test_duplicate_registration_is_rejected():
    registry = Registry("thing", "fewshot_bench.none", ())
    registry.register("a")(type("A", (), {}))
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a")(type("B", (), {}))


def test_entry_point_plugins_are_found(monkeypatch):
    class Plugin:
        pass

    class FakeEntry:
        name = "my-plugin"

        def load(self):
            return Plugin

    monkeypatch.setattr("bench.registry.entry_points", lambda group: [FakeEntry()])
    registry = Registry("method", "fewshot_bench.methods", ())
    assert registry.get("my-plugin") is Plugin


def test_method_specs_with_parameters():
    specs = parse_methods("protonet, trm(attn_dim=128,normalize=row),cosine")
    assert [s.label for s in specs] == ["protonet", "trm(attn_dim=128,normalize=row)",
                                        "cosine"]
    config = specs[1].config()
    assert config.attn_dim == 128 and config.normalize == "row"


@pytest.mark.parametrize("text, message", [
    ("", "--methods is empty"),
    ("trm(bogus=1)", "unknown parameter 'bogus' for method trm"),
    ("trm(attn_dim=big)", "attn_dim='big' of method trm is not a valid int"),
    ("trm(temperature=hot)", "temperature='hot' is not valid; valid values: learned, fixed"),
    ("trm(normalize=both)", "normalize='both' is not valid; valid values: dual, row, sinkhorn"),
    ("trm(tau=nan)", "tau=nan must be a positive finite number"),
    ("protonet(backbone=resnet)", "unknown backbone 'resnet'"),
])
def test_bad_method_specs(text, message):
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_methods(text)


def test_build_config_coerces_strings():
    @dataclass(frozen=True)
    class Config:
        flag: bool = False
        rate: float = 0.1

    assert build_config(Config, {"flag": "yes", "rate": "0.5"}, "x") == Config(True, 0.5)


def test_repo_folders_never_shadow_top_level_packages(tmp_path):
    """`datasets` and `methods` install as bench.datasets / bench.methods only."""
    code = ("import importlib.util, sys\n"
            "for name in ('datasets', 'methods'):\n"
            "    spec = importlib.util.find_spec(name)\n"
            "    print(name, spec.origin if spec else None)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert str(REPO) not in out, out
    import bench.datasets
    import bench.methods

    assert Path(bench.datasets.__file__).parent == REPO / "datasets"
    assert Path(bench.methods.__file__).parent == REPO / "methods"
