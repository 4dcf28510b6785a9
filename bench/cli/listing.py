"""`bench list`: registered methods and datasets with their parameters and defaults, and the
presets, as rich tables (the terminal) or Markdown (`--format markdown`: the generated blocks of
docs/methods.md and docs/presets.md, filled by scripts/list_tables.py).

The Markdown is deterministic: registry order (sorted names), the presets' own order, no paths of
the machine, no times.
"""

from __future__ import annotations

import re
import shlex
import sys

from bench.registry import DATASETS, METHODS, parameters

TABLES = ("methods", "datasets", "presets")


def registry_rows() -> list[tuple[str, str, str, list[tuple[str, object, str]]]]:
    rows = []
    for kind, registry in (("method", METHODS), ("dataset", DATASETS)):
        for name in registry.names():
            cls = registry.get(name)
            summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
            summary = getattr(cls, "description", "") or summary
            if kind == "method":
                summary += method_labels(cls)
            rows.append((kind, name, summary, parameters(cls.Config)))
    return rows


def method_labels(cls) -> str:
    """How a method uses an episode, where it is not the plain inductive way."""
    labels = [text for flag, text in (
        (cls.transductive, "transductive: a query's logits depend on the episode's other queries"),
        (cls.fits_at_test_time, "fits a classifier on each test episode's support set, seeded"),
        (cls.requires_pretraining, "needs --pretrain-epochs; no training episodes"),
    ) if flag]
    return "".join(f" [{label}]" for label in labels)


def reference(cls) -> str:
    """The paper (or patent) a plugin implements: its ``paper`` attribute where it has one, else
    the first paragraph of its module's docstring, which cites it (docs/methods.md)."""
    text = getattr(cls, "paper", "") or getattr(cls, "reference", "")
    if not text:
        doc = getattr(sys.modules.get(cls.__module__), "__doc__", None) or ""
        text = doc.strip().split("\n\n", 1)[0]
    return " ".join(str(text).split())


def preset_settings(options: dict) -> list[str]:
    """A preset's options as the `bench run` flags that would set them, in the preset's order."""
    from bench.cli.run import run_command

    flags = {}
    for param in run_command.params:
        shorts = [opt for opt in param.opts if not opt.startswith("--")]
        flags[param.name] = (shorts or param.opts)[0]
    settings = []
    for key, value in options.items():
        flag = flags.get(key, "--" + key.replace("_", "-"))
        for item in value if isinstance(value, (tuple, list)) else (value,):
            settings.append(f"{flag} {shlex.quote(str(item))}")
    return settings


# --- Markdown ---------------------------------------------------------------------------------

def md_cell(text: object) -> str:
    """One table cell: whitespace collapsed to single spaces, pipes escaped."""
    return " ".join(str(text).split()).replace("|", r"\|")


def md_code(text: object) -> str:
    """A code span that survives any backticks in ``text``; pipes escaped (GFM tables)."""
    text = " ".join(str(text).split())
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return md_cell(f"{fence}{pad}{text}{pad}{fence}")


def md_default(value: object) -> str:
    """A default as it is written in `NAME(key=value)`: true/false, plain strings."""
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def md_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def parameters_cell(params) -> str:
    """A plugin's parameters as `name=default`: help, one per line of the cell."""
    return "<br>".join(f"{md_code(f'{p}={md_default(d)}')}" + (f": {md_cell(h)}" if h else "")
                       for p, d, h in params)


def methods_markdown() -> str:
    rows = [(md_code(name), md_cell(summary), md_cell(reference(METHODS.get(name))),
             parameters_cell(params))
            for kind, name, summary, params in registry_rows() if kind == "method"]
    return md_table(("method", "description", "paper / reference", "parameters (default)"),
                    rows)


def datasets_markdown() -> str:
    rows = [(md_code(name), md_cell(summary), parameters_cell(params))
            for kind, name, summary, params in registry_rows() if kind == "dataset"]
    return md_table(("dataset", "description", "options (-D KEY=VALUE, default)"), rows)


def presets_markdown() -> str:
    from bench.plan.presets import PRESETS

    rows = [(md_code(name), md_cell(preset["about"]),
             " ".join(md_code(setting) for setting in preset_settings(preset["options"])))
            for name, preset in PRESETS.items()]
    return md_table(("preset", "what it is for", "key settings (bench run flags)"), rows)


MARKDOWN = {"methods": methods_markdown, "datasets": datasets_markdown,
            "presets": presets_markdown}


def markdown(only: str | None = None) -> str:
    """One table (``only``), or every table under a `## ` heading."""
    if only is not None:
        return MARKDOWN[only]()
    return "\n".join(f"## {name.capitalize()}\n\n{MARKDOWN[name]()}" for name in TABLES)


# --- rich -------------------------------------------------------------------------------------

def print_registry(only: str | None = None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    for kind in ("method", "dataset"):
        if only not in (None, f"{kind}s"):
            continue
        table = Table(title=f"{kind}s", show_lines=True)
        table.add_column(kind)
        table.add_column("description")
        table.add_column("parameters (default)")
        for row_kind, name, summary, params in registry_rows():
            if row_kind == kind:
                text = "\n".join(f"{p} = {d!r}  {h}".rstrip() for p, d, h in params)
                table.add_row(name, escape(summary), escape(text))
        console.print(table)
    if only in (None, "presets"):
        from bench.plan.presets import PRESETS

        table = Table(title="presets (bench run --preset NAME)", show_lines=True)
        table.add_column("preset")
        table.add_column("what it is for")
        table.add_column("key settings")
        for name, preset in PRESETS.items():
            table.add_row(name, escape(preset["about"]),
                          escape("\n".join(preset_settings(preset["options"]))))
        console.print(table)
