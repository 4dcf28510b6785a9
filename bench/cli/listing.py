"""`bench list`: registered methods and datasets with their parameters and defaults."""

from __future__ import annotations

from bench.registry import DATASETS, METHODS, parameters


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


def print_registry() -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    for kind in ("method", "dataset"):
        table = Table(title=f"{kind}s", show_lines=True)
        table.add_column(kind)
        table.add_column("description")
        table.add_column("parameters (default)")
        for row_kind, name, summary, params in registry_rows():
            if row_kind == kind:
                text = "\n".join(f"{p} = {d!r}  {h}".rstrip() for p, d, h in params)
                table.add_row(name, escape(summary), escape(text))
        console.print(table)
