"""Name -> class registries for methods and datasets, with third-party plugins via entry points.

Modelled on fvcore's Registry: ``METHODS.register("trm")`` decorates a class, ``METHODS.get(name)``
returns it or raises a one-line error listing the valid names. Plugins in other packages declare
an entry point in the group ``fewshot_bench.methods`` / ``fewshot_bench.datasets`` whose object is
the class (it is registered under the entry point's name) or a module that registers itself.
"""

from __future__ import annotations

import dataclasses
from importlib.metadata import entry_points
from typing import Any, Callable, Iterator

from bench.errors import BenchError


class Registry:
    def __init__(self, kind: str, entry_point_group: str, builtin_modules: tuple[str, ...]):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._builtin_modules = builtin_modules
        self._entries: dict[str, type] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[type], type]:
        def decorate(cls: type) -> type:
            if name in self._entries and self._entries[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            cls.registry_name = name
            self._entries[name] = cls
            return cls

        return decorate

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        import importlib

        for module in self._builtin_modules:
            importlib.import_module(module)
        for entry in entry_points(group=self.entry_point_group):
            obj = entry.load()
            if isinstance(obj, type) and entry.name not in self._entries:
                self.register(entry.name)(obj)

    def get(self, name: str) -> type:
        self._load()
        if name not in self._entries:
            valid = ", ".join(sorted(self._entries))
            raise BenchError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {valid}")
        return self._entries[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries


METHODS = Registry(
    "method",
    "fewshot_bench.methods",
    ("bench.methods.protonet", "bench.methods.cosine", "bench.methods.trm",
     "bench.methods.matchingnet", "bench.methods.dn4", "bench.methods.ctx", "bench.methods.frn",
     "bench.methods.relationnet", "bench.methods.can", "bench.methods.feat",
     "bench.methods.baseline", "bench.methods.baselinepp"),
)
DATASETS = Registry(
    "dataset",
    "fewshot_bench.datasets",
    ("bench.datasets.glyphs", "bench.datasets.omniglot", "bench.datasets.mini_imagenet",
     "bench.datasets.cub"),
)


def parameters(config_cls: type) -> list[tuple[str, Any, str]]:
    """(name, default, help) of each field of a config dataclass, for `bench list`."""
    rows = []
    for field in dataclasses.fields(config_cls):
        default = field.default if field.default is not dataclasses.MISSING else None
        rows.append((field.name, default, field.metadata.get("help", "")))
    return rows


def build_config(config_cls: type, values: dict[str, str | Any], owner: str) -> Any:
    """A config dataclass from string values (CLI) or typed values, with one-line errors."""
    fields = {field.name: field for field in dataclasses.fields(config_cls)}
    typed = {}
    for key, raw in values.items():
        if key not in fields:
            valid = ", ".join(fields) or "(none)"
            raise BenchError(f"unknown parameter {key!r} for {owner}; valid parameters: {valid}")
        typed[key] = _coerce(raw, fields[key], owner)
    config = config_cls(**typed)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def _coerce(raw: Any, field: dataclasses.Field, owner: str) -> Any:
    default = field.default
    if not isinstance(raw, str) or isinstance(default, str) or default is None:
        return raw
    text = raw.strip()
    try:
        if isinstance(default, bool):
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        kind = type(default).__name__
        raise BenchError(
            f"parameter {field.name}={raw!r} of {owner} is not a valid {kind}"
        ) from None
    return raw
