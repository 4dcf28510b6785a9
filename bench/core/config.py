"""What defines one result cell, resolved and hashable.

A cell is (method with its parameters, dataset with its options, way, shot, query, test episodes,
seed, test-episode seed, training settings). Its resolved configuration is stored with its
results row, and its ``cell_id`` (a hash of that configuration) names its per-episode file, log
and checkpoint, so a rerun can tell a finished cell from a new one.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from bench.core.precision import PRECISIONS
from bench.errors import BenchError
from bench.registry import DATASETS, METHODS, build_config
from bench.results import digest

# Training settings that `CellConfig.training` leaves out of a config while they hold these values,
# so the ids of cells from before the setting existed stay valid. Readers of stored configs
# (the report's labels) take an absent one to mean this value.
LEFT_OUT_DEFAULTS = {"train.precision": "fp32", "train.pretrain_epochs": 0,
                     "train.plateau_window": 0, "train.plateau_delta": "off"}


@dataclass(frozen=True)
class TrainConfig:
    episodes: int = 500
    way: int | None = None  # None: the test way
    shot: int | None = None  # None: the test shot
    query: int = 15
    lr: float = 1e-3
    lr_step: int = 2000  # episodes between learning-rate decays
    lr_gamma: float = 0.5
    val_every: int = 100  # episodes between validations (0: no validation)
    val_episodes: int = 100
    checkpoint_every: int = 100  # episodes between resumable checkpoints (0: none)
    # Training arithmetic as resolved (`--precision auto` becomes one of these,
    # bench.core.precision): fp32, or bf16 autocast (evaluation is fp32).
    precision: str = "fp32"
    # Supervised pre-training of the backbone on all base classes before episodic training
    # (bench.train.pretrain): epochs over the training split (0: none), batch size, Adam learning
    # rate.
    # Chen et al. 2019: batch 16, Adam 1e-3, 400 epochs on miniImageNet, 5 on Omniglot.
    pretrain_epochs: int = 0
    pretrain_batch: int = 16
    pretrain_lr: float = 1e-3
    # The budget rule (``bench.train.runner.plateaued``): stop at a validation once the best
    # validation accuracy has risen by no more than ``plateau_delta`` points over the last
    # ``plateau_window`` training episodes, all of them at the step schedule's last learning rate
    # before the cap (``bench.train.runner.final_rate_from``: a method that flattens early still
    # trains at the lower rate); ``episodes`` is then the cap. 0: train all ``episodes``.
    plateau_window: int = 0
    plateau_delta: float = 0.5

    def validate(self) -> None:
        positive = {"query": self.query, "val_episodes": self.val_episodes}
        for name, value in positive.items():
            if value < 1:
                raise BenchError(f"{name} must be a positive integer, got {value}")
        for name in ("episodes", "lr_step", "val_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise BenchError(f"{name} must be zero or positive, got {getattr(self, name)}")
        if not self.lr > 0:
            raise BenchError(f"lr must be positive, got {self.lr}")
        if not 0 < self.lr_gamma <= 1:
            raise BenchError(f"--lr-gamma must be in (0, 1] (the factor the learning rate is "
                             f"multiplied by every --lr-step episodes), got {self.lr_gamma}")
        for option, value, ok, rule in (
                ("--pretrain-epochs", self.pretrain_epochs, self.pretrain_epochs >= 0, "≥ 0"),
                ("--pretrain-batch", self.pretrain_batch, self.pretrain_batch >= 1, "≥ 1"),
                ("--pretrain-lr", self.pretrain_lr, self.pretrain_lr > 0, "> 0")):
            if not ok:
                raise BenchError(f"{option} must be {rule}, got {value}")
        if self.plateau_window < 0:
            raise BenchError(f"--plateau-window must be ≥ 0 episodes, got {self.plateau_window}")
        if not self.plateau_delta >= 0:
            raise BenchError(f"--plateau-delta must be ≥ 0 points, got {self.plateau_delta}")
        if self.plateau_window and not self.val_every:
            raise BenchError("--plateau-window stops on validation accuracy; set --val-every N "
                             "(> 0) too")
        if self.precision not in PRECISIONS:
            raise BenchError(f"--precision {self.precision!r} is not valid here; valid values: "
                             f"{', '.join(PRECISIONS)} (auto is resolved before cells are made)")


@dataclass(frozen=True)
class MethodSpec:
    """A method and its parameter overrides, e.g. ``trm(attn_dim=128,normalize=row)``."""

    name: str
    params: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        if not self.params:
            return self.name
        return f"{self.name}({','.join(f'{k}={v}' for k, v in self.params)})"

    def config(self):
        cls = METHODS.get(self.name)
        return build_config(cls.Config, dict(self.params), f"method {self.name}")


_SPEC = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(?:\((.*)\))?\s*$")


def parse_methods(text: str) -> list[MethodSpec]:
    """``"trm,protonet,trm(attn_dim=128,normalize=row)"`` → method specs (validated)."""
    items = split_methods(text)
    if not items:
        raise BenchError(f"--methods is empty; valid methods: {', '.join(METHODS.names())}")
    specs = [parse_method(item) for item in items]
    for spec in specs:
        spec.config()  # unknown method or parameter → one-line error before anything runs
    return specs


def split_methods(text: str) -> list[str]:
    """The comma-separated items of a --methods text, commas inside parentheses kept:
    ``"trm,trm(attn_dim=128,normalize=row)"`` → ``["trm", "trm(attn_dim=128,normalize=row)"]``;
    an unbalanced parenthesis is a one-line error."""
    items, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            raise BenchError(f"--methods {text!r} closes a parenthesis it never opened; write "
                             "NAME(key=value,...)")
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    if depth:
        raise BenchError(f"--methods {text!r} leaves a parenthesis open; write "
                         "NAME(key=value,...)")
    return [item.strip() for item in items if item.strip()]


def parse_method(text: str) -> MethodSpec:
    match = _SPEC.match(text)
    if not match:
        raise BenchError(f"cannot read method {text!r}; write NAME or NAME(key=value,...)")
    name, inner = match.group(1), match.group(2)
    METHODS.get(name)
    return MethodSpec(name, parse_assignments(inner or "", f"method {name}"))


def parse_assignments(text: str, owner: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if "=" not in item:
            raise BenchError(f"parameter {item!r} of {owner} must be written key=value")
        key, value = (part.strip() for part in item.split("=", 1))
        if any(key == seen for seen, _ in pairs):
            raise BenchError(f"parameter {key} of {owner} is given twice; give it once (for "
                             "several values, list the method once per value)")
        pairs.append((key, value))
    return tuple(pairs)


def identity_params(config) -> dict:
    """The method's parameters as cells record them: every field, except those a method added
    after results existed (``Config.OMITTED_AT_DEFAULT``) while they hold their default, so
    that the cell and training ids of those results stay valid."""
    params = asdict(config)
    for name in getattr(config, "OMITTED_AT_DEFAULT", ()):
        if params[name] == type(config).__dataclass_fields__[name].default:
            del params[name]
    return params


@dataclass(frozen=True)
class Cell:
    method: MethodSpec
    dataset: str
    dataset_params: tuple[tuple[str, str], ...]
    way: int
    shot: int
    query: int
    test_episodes: int
    seed: int
    train: TrainConfig = field(default_factory=TrainConfig)
    # Cross-domain cells: the model trained on ``dataset`` is tested on another dataset's test
    # classes (``bench run --test-dataset``). None: tested on ``dataset`` itself.
    test_dataset: str | None = None
    test_dataset_params: tuple[tuple[str, str], ...] = ()
    # The seed of the test episodes (``bench run --test-seed``). None: the training seed, so a
    # multi-seed study can test every training run on one identical episode set.
    test_seed: int | None = None

    @property
    def episode_seed(self) -> int:
        """The seed the test episodes are drawn with: ``test_seed``, else the training seed."""
        return self.seed if self.test_seed is None else self.test_seed

    @property
    def train_way(self) -> int:
        return self.train.way or self.way

    @property
    def train_shot(self) -> int:
        return self.train.shot or self.shot

    def method_config(self):
        return self.method.config()

    def dataset_config(self):
        cls = DATASETS.get(self.dataset)
        return build_config(cls.Config, dict(self.dataset_params), f"dataset {self.dataset}")

    @property
    def tested_dataset(self) -> str:
        """The dataset whose test classes the cell is evaluated on."""
        return self.test_dataset or self.dataset

    def tested_config(self):
        if not self.test_dataset:
            return self.dataset_config()
        cls = DATASETS.get(self.test_dataset)
        return build_config(cls.Config, dict(self.test_dataset_params),
                            f"test dataset {self.test_dataset}")

    def training(self) -> dict:
        """Everything the trained model depends on (not the test way, query or episode count)."""
        train = {**asdict(self.train), "way": self.train_way, "shot": self.train_shot}
        if train["precision"] == LEFT_OUT_DEFAULTS["train.precision"]:
            del train["precision"]  # the default is left out: ids from before it stay valid
        if not train["pretrain_epochs"]:  # no pre-training: left out, as the precision
            for name in ("pretrain_epochs", "pretrain_batch", "pretrain_lr"):
                del train[name]
        if not train["plateau_window"]:  # no budget rule: left out, ids from before it stay
            del train["plateau_window"], train["plateau_delta"]
        return {
            "method": self.method.name,
            "method_label": self.method.label,
            "method_params": identity_params(self.method_config()),
            "dataset": self.dataset,
            "dataset_params": asdict(self.dataset_config()),
            "seed": self.seed,
            "train": train,
        }

    def resolved(self) -> dict:
        """Everything the result depends on, with every default filled in. The test dataset
        appears only in cross-domain cells, so the ids of all other cells stay what they were."""
        tested = {}
        if self.test_dataset:
            tested = {"test_dataset": self.test_dataset,
                      "test_dataset_params": asdict(self.tested_config())}
        if self.episode_seed != self.seed:  # left out at its default: earlier ids stay valid
            tested["test_seed"] = self.episode_seed
        return {**self.training(), "way": self.way, "shot": self.shot, "query": self.query,
                "test_episodes": self.test_episodes, **tested}

    @property
    def cell_id(self) -> str:
        return digest(self.resolved())

    @property
    def training_id(self) -> str:
        """Cells with the same training_id share one trained model (e.g. 5- and 20-way tests)."""
        return digest(self.training())

    def describe(self) -> str:
        datasets = self.dataset + (f"→{self.test_dataset}" if self.test_dataset else "")
        tested = f" (test seed {self.episode_seed})" if self.episode_seed != self.seed else ""
        return (f"{self.method.label} {datasets} {self.way}-way {self.shot}-shot seed "
                f"{self.seed}{tested}")
