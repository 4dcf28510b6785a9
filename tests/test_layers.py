"""The layers of `bench/` and the direction of its imports, kept by reading the source with `ast`.

Every import counts, also those inside functions. The layers, top to bottom (docs/architecture.md):

    cli  →  plan  →  execute (execute/ray: the only place that imports Ray)  ·  perf
         →  train  →  evaluate  →  core  →  the public API (bench.errors, registry, data, results,
         stats, interrupt, l2l, methods.base)
    report reads results: it imports core and the public API only, and never torch.

Method and dataset plugins import the public API and their own package's helpers only. No code
lives under results/. No circle among bench's modules.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"bench": ROOT / "bench", "bench.methods": ROOT / "methods",
                "bench.datasets": ROOT / "datasets"}

API = {"bench", "bench.errors", "bench.registry", "bench.data", "bench.results", "bench.stats",
       "bench.interrupt", "bench.l2l"}
# what each layer may import from bench, besides itself and the public API
MAY_IMPORT = {
    "cli": {"plan", "execute", "perf", "report", "train", "evaluate", "core"},
    "plan": {"core"},
    "execute": {"train", "evaluate", "core"},
    "perf": {"train", "evaluate", "core"},
    "train": {"evaluate", "core"},
    "evaluate": {"core"},
    "report": {"core"},
    "core": set(),
    "api": set(),
}
PLUGIN_API = {"bench.errors", "bench.registry", "bench.data", "bench.l2l", "bench.interrupt",
              "bench.methods.base", "bench.methods.backbones"}


def module_files() -> dict[str, Path]:
    """Every module of the installed package `bench` (methods/ and datasets/ included)."""
    found = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if package == "bench" and parts[0] in ("methods", "datasets"):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imported_modules(path: Path, modules: set[str], name: str) -> list[tuple[str, int]]:
    """(module, line) for every import in the file, at any depth (lazy imports too); a
    `from package import name` names the submodule where `name` is one."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((candidate if candidate in modules else base, node.lineno))
    return found


def layer(module: str) -> str | None:
    """The layer a bench module belongs to; None for plugins."""
    if module.startswith(("bench.methods", "bench.datasets")):
        return None
    parts = module.split(".")
    if module in API or len(parts) < 2 or parts[1] not in MAY_IMPORT:
        return "api"
    return parts[1]


def violations(files: dict[str, Path], root: Path = ROOT) -> list[str]:
    """Every import that breaks a rule, as 'file:line: what'."""
    names = set(files)
    problems = []
    for name, path in sorted(files.items()):
        where = path.relative_to(root)
        for target, line in imported_modules(path, names, name):
            top = target.split(".")[0]
            if top == "ray" and not name.startswith("bench.execute.ray"):
                problems.append(f"{where}:{line}: imports ray outside bench/execute/ray/")
            if top == "torch" and (layer(name) == "report" or name == "bench.results"):
                problems.append(f"{where}:{line}: {name} imports torch (report reads results only)")
            if top != "bench" or target == name:
                continue
            if layer(name) is None:  # a plugin
                own = ".".join(name.split(".")[:2])
                if target not in PLUGIN_API and not target.startswith(own + "."):
                    problems.append(f"{where}:{line}: plugin {name} imports {target} "
                                    "(plugins import the public API only)")
                continue
            mine, theirs = layer(name), layer(target)
            if theirs is None:
                if mine not in ("api", "core", "train", "evaluate", "execute", "perf", "cli"):
                    problems.append(f"{where}:{line}: {name} imports plugin {target}")
                continue
            if theirs == mine or theirs == "api" or theirs in MAY_IMPORT[mine]:
                if mine == "api" and theirs != "api":
                    problems.append(f"{where}:{line}: public API {name} imports {target}")
                continue
            problems.append(f"{where}:{line}: {mine} ({name}) imports {theirs} ({target}): "
                            "imports point down")
    return problems


def circles(files: dict[str, Path]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), lazy imports included."""
    names = set(files)
    graph = {name: {target for target, _ in imported_modules(path, names, name)
                    if target in names and target != name and not name.startswith(target + ".")}
             for name, path in files.items()}
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_every_import_points_down():
    assert violations(module_files()) == []


def test_no_import_circle():
    assert circles(module_files()) == []


def test_no_code_under_results():
    code = [str(path.relative_to(ROOT)) for pattern in ("*.py", "*.sh")
            for path in (ROOT / "results").rglob(pattern)]
    assert code == []


def test_top_level_holds_only_the_public_api_and_subpackages():
    loose = {path.stem for path in (ROOT / "bench").glob("*.py")} - {"__init__"}
    assert {f"bench.{stem}" for stem in loose} <= API


@pytest.mark.parametrize("name", sorted(module_files()))
def test_no_module_over_350_lines(name):
    lines = len(module_files()[name].read_text().splitlines())
    assert lines <= 350, f"{name} has {lines} lines (split it by what its parts do)"


# The checker itself: a deliberately added upward import (lazy, inside a function), a plugin that
# reaches into the engine, Ray outside execute/ray, torch in report, and a circle must all be seen.

def _fake(tmp_path, sources: dict[str, str]) -> dict[str, Path]:
    files = {}
    for name, text in sources.items():
        path = tmp_path / (name.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        files[name] = path
    return files


def test_checker_sees_a_lazy_upward_import(tmp_path):
    files = _fake(tmp_path, {
        "bench.core.cells": "def f():\n    from bench.execute import local\n",
        "bench.execute.local": "from bench.core import cells\n",
    })
    found = violations(files, tmp_path)
    assert len(found) == 1 and "core (bench.core.cells) imports execute" in found[0]
    assert circles(files) == [["bench.core.cells", "bench.execute.local"]]


def test_checker_sees_plugin_ray_and_torch_rules(tmp_path):
    files = _fake(tmp_path, {
        "bench.methods.mine": "from bench.train import runner\nfrom bench.methods import base\n",
        "bench.methods.base": "",
        "bench.train.runner": "import ray\n",
        "bench.report.tables": "def f():\n    import torch\n",
        "bench.errors": "",
    })
    found = "\n".join(violations(files, tmp_path))
    assert "plugin bench.methods.mine imports bench.train.runner" in found
    assert "imports ray outside" in found
    assert "imports torch" in found
    assert "bench.methods.base" not in found.replace("mine imports bench.train.runner", "")


def test_checker_accepts_downward_imports(tmp_path):
    files = _fake(tmp_path, {
        "bench.cli.run": "from bench.plan import cells\nfrom bench.execute import local\n",
        "bench.plan.cells": "from bench.core import config\nfrom bench import errors\n",
        "bench.execute.local": "from bench.train import episodic\n",
        "bench.execute.ray.executor": "import ray\nfrom bench.execute import local\n",
        "bench.train.episodic": "from bench.evaluate import episodic\n",
        "bench.evaluate.episodic": "from bench.core import config\n",
        "bench.core.config": "from bench.errors import BenchError\n",
        "bench.errors": "",
    })
    assert violations(files, tmp_path) == [] and circles(files) == []
