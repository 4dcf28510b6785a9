"""Packaging follows the layout: pyproject.toml lists every subpackage, and a wheel built from the
repository, installed into a fresh venv outside the checkout, runs `bench list`, a tiny `bench run`
and `bench perf --help`.

The fresh venv sees the dependencies installed in this interpreter's environment (torch etc.)
through a .pth file naming its site-packages: a directory named by a .pth line is only appended
to sys.path, its own .pth files are not run, so the editable install of the checkout
(__editable__.fewshot_bench-0.1.0.pth and its finder) stays inactive there; the test checks that
`bench` is imported from the venv, not from the checkout.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def package_roots() -> dict[str, Path]:
    """Installed name -> folder of each package-dir entry ("bench.methods" -> methods/)."""
    return {name: ROOT / folder for name, folder in SETUPTOOLS["package-dir"].items()}


def source_packages() -> dict[str, Path]:
    """Installed name -> folder of every folder with an __init__.py under the package roots."""
    roots = package_roots()
    found = {}
    for root_name, root in roots.items():
        for init in sorted(root.rglob("__init__.py")):
            parts = init.parent.relative_to(root).parts
            if any(part == "__pycache__" or part.startswith(".") for part in parts):
                continue
            name = ".".join([root_name, *parts])
            if name in roots and init.parent != roots[name]:
                continue  # e.g. a bench/methods/ folder: bench.methods is methods/
            found[name] = init.parent
    return found


def package_files(folder: Path) -> list[Path]:
    """The files a package ships: its modules and any data files (not subfolders, caches, hidden
    files or editor backups)."""
    return sorted(path for path in folder.iterdir()
                  if path.is_file() and path.suffix not in (".pyc", ".pyo")
                  and not path.name.startswith(".") and not path.name.endswith("~"))


# --- the package list (fast) --------------------------------------------------------------------

def test_every_subpackage_is_listed_in_pyproject():
    listed = set(SETUPTOOLS["packages"])
    found = set(source_packages())
    assert not found - listed, (f"add to [tool.setuptools] packages in pyproject.toml: "
                                f"{sorted(found - listed)}")
    assert not listed - found, (f"listed without a folder with an __init__.py: "
                                f"{sorted(listed - found)}")
    assert len(SETUPTOOLS["packages"]) == len(listed), "a package is listed twice"


def test_no_folder_of_modules_lacks_an_init():
    """A folder of .py files without __init__.py would be a namespace package, which an explicit
    package list leaves out of the wheel."""
    missing = []
    for root in package_roots().values():
        for module in root.rglob("*.py"):
            folder = module.parent
            parts = folder.relative_to(root).parts
            if any(part == "__pycache__" or part.startswith(".") for part in parts):
                continue
            if not (folder / "__init__.py").exists():
                missing.append(str(folder.relative_to(ROOT)))
    assert not missing, f"folders of modules without __init__.py: {sorted(set(missing))}"


def test_package_roots_and_readme_exist():
    for name, folder in package_roots().items():
        assert (folder / "__init__.py").is_file(), f"{name}: {folder} has no __init__.py"
    assert (ROOT / PYPROJECT["project"]["readme"]).is_file()
    assert PYPROJECT["project"]["scripts"]["bench"] == "bench.cli:main"


# --- the wheel (slow) ---------------------------------------------------------------------------

def run(command: list[str], *, cwd: Path, env: dict | None = None, timeout: float = 120
        ) -> subprocess.CompletedProcess:
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert done.returncode == 0, (f"{' '.join(map(str, command))} exited {done.returncode}\n"
                                  f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}")
    return done


def copy_sources(target: Path) -> Path:
    """What a wheel is built from (pyproject.toml, the readme, the package folders) copied out of
    the checkout, so the build's build/ and *.egg-info never touch the working tree."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")
    target.mkdir()
    for name in ("pyproject.toml", PYPROJECT["project"]["readme"]):
        shutil.copy2(ROOT / name, target / name)
    for folder in {Path(path).parts[0] for path in SETUPTOOLS["package-dir"].values()}:
        shutil.copytree(ROOT / folder, target / folder, ignore=ignore)
    return target


def build_wheel(tmp_path: Path) -> Path:
    source = copy_sources(tmp_path / "src")
    dist = tmp_path / "dist"
    # Offline: no index, no isolated build environment (setuptools and wheel come from this one).
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-q", "-w", dist, source], cwd=tmp_path, timeout=300)
    wheels = list(dist.glob("fewshot_bench-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def check_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for package, folder in source_packages().items():
        prefix = package.replace(".", "/")
        for path in package_files(folder):
            assert f"{prefix}/{path.name}" in names, f"{prefix}/{path.name} is not in the wheel"
    top = {name.split("/", 1)[0] for name in names}
    assert {entry for entry in top if not entry.endswith(".dist-info")} == {"bench"}, top
    [entry_points] = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    assert "bench = bench.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def fresh_venv(tmp_path: Path, wheel: Path) -> tuple[Path, Path]:
    """(venv, its site-packages): the wheel installed, this environment's packages visible."""
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    run([base, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    # Installed before the .pth exists, so pip sees no other fewshot-bench to replace.
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "--disable-pip-version-check", "-q", wheel], cwd=tmp_path)
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=tmp_path).stdout.strip())
    ours = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "_fewshot_bench_dependencies.pth").write_text("\n".join(ours) + "\n")
    return venv, site


IMPORT_CHECK = """
import importlib, importlib.metadata, json, pkgutil, sys
import bench, bench.methods, bench.datasets
modules = sorted(info.name for info in pkgutil.walk_packages(bench.__path__, "bench."))
for name in modules:
    importlib.import_module(name)
print(json.dumps({
    "files": [bench.__file__, bench.methods.__file__, bench.datasets.__file__],
    "editable": sorted(name for name in sys.modules if "editable" in name)
                + [repr(finder) for finder in sys.meta_path if "editable" in repr(finder).lower()],
    "dist": str(importlib.metadata.distribution("fewshot-bench")._path),
    "modules": modules,
}))
"""


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_installed_outside_the_checkout_runs(tmp_path):
    assert not tmp_path.resolve().is_relative_to(ROOT)
    wheel = build_wheel(tmp_path)
    check_wheel_contents(wheel)
    venv, site = fresh_venv(tmp_path, wheel)
    bench = venv / "bin" / "bench"
    assert bench.read_text().splitlines()[0] == f"#!{venv / 'bin' / 'python'}"

    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "FEWSHOT_BENCH_DATA",
                          "FEWSHOT_BENCH_CACHE")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONNOUSERSITE="1", FEWSHOT_BENCH_CACHE=str(tmp_path / "cache"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    # Every module imports from the venv; nothing comes from the checkout or its editable finder.
    seen = json.loads(run([venv / "bin" / "python", "-c", IMPORT_CHECK], cwd=elsewhere,
                          env=env).stdout.strip().splitlines()[-1])
    for file in seen["files"]:
        assert Path(file).resolve().is_relative_to(site.resolve()), file
        assert not Path(file).resolve().is_relative_to(ROOT), file
    assert seen["editable"] == [], seen["editable"]
    assert Path(seen["dist"]).resolve().is_relative_to(site.resolve()), seen["dist"]
    for package in source_packages():
        assert package == "bench" or package in seen["modules"], package

    listed = run([bench, "list"], cwd=elsewhere, env=env).stdout
    assert "protonet" in listed and "glyphs" in listed and "omniglot-snell" in listed

    out = tmp_path / "out"
    run([bench, "run", "--train-episodes", "5", "--test-episodes", "10", "--methods", "protonet",
         "--shots", "1", "--val-every", "0", "--query", "5", "--train-query", "5",
         "--out", out], cwd=elsewhere, env=env, timeout=300)
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["method"], row["dataset"], row["shot"]) for row in rows] == [
        ("protonet", "glyphs", "1")]
    assert not (elsewhere / "runs").exists()

    perf = run([bench, "perf", "--help"], cwd=elsewhere, env=env).stdout
    assert "Usage: bench perf" in perf
