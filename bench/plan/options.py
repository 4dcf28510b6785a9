"""Option text of `bench run` and `bench perf` checked and converted, each option in one place:
one-line errors that name the bad value and what is valid. No torch here."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.core.config import TrainConfig
from bench.errors import BenchError
from bench.registry import METHODS

MAX_SEED = 2**32 - 1  # what numpy's and torch's generators accept everywhere


def distinct(values: list[int], option: str) -> list[int]:
    """The values of a list option, each once; a value given twice is a one-line error (it would
    plan the same cells twice, which a second run then reports as finished elsewhere)."""
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise BenchError(f"{option} lists {', '.join(map(str, repeated))} more than once; list "
                         "each value once")
    return values


def check_per_shot(train_ways: dict, shots: list[int]) -> None:
    """--train-way SHOT:WAY must speak of at least one shot that is run; a preset's list
    narrowed by --shots keeps the ways of the shots left (a shot not listed trains at its test
    way)."""
    listed = sorted(shot for shot in train_ways if shot is not None)
    if listed and not set(listed) & set(shots):
        raise BenchError(f"--train-way gives training ways for {', '.join(map(str, listed))}-shot "
                         f"only, and --shots ({', '.join(map(str, shots))}) tests none of them; "
                         "write --train-way WAY, or SHOT:WAY for a tested shot")


def test_seed_option(text) -> int | None:
    """--test-seed: one seed for the test episodes of every cell (None: each cell's own seed)."""
    if text is None or str(text).strip() == "":
        return None
    values = int_list(text, "--test-seed", minimum=0, example="0", maximum=MAX_SEED)
    if len(values) != 1:
        raise BenchError(f"--test-seed takes one seed (the test episodes every training seed is "
                         f"tested on), got {text!r}; write e.g. --test-seed 0")
    return values[0]


def check_pretraining(methods, train: TrainConfig) -> None:
    """Methods trained only by pre-training (baseline, baselinepp) need --pretrain-epochs; their
    cells get 0 training episodes (they have nothing to learn from episodes)."""
    for method in methods:
        if METHODS.get(method.name).requires_pretraining and not train.pretrain_epochs:
            raise BenchError(f"{method.name} is a pre-trained backbone with a classifier fitted "
                             "per test episode; add --pretrain-epochs N (Chen et al. 2019: 5 on "
                             "Omniglot, 400 on miniImageNet)")


def tensorboard_dir(text: str | None) -> Path | None:
    """--tensorboard DIR: TensorBoard installed, DIR created and writable (None: not asked)."""
    if not text:
        return None
    from bench.core.tensorboard_log import check_available

    check_available()
    return out_dir_writable(text, "--tensorboard")


def storage_dir(text: str | None) -> Path | None:
    """--storage: created and checked writable like --out (None: models stay under --out)."""
    return out_dir_writable(text, "--storage") if text else None


def train_episodes(text) -> dict[int | None, int]:
    """--train-episodes: N for every cell ({None: N}), or SHOT:N,... per training shot, as Chen
    et al. train 60,000 episodes at 1-shot and 40,000 at 5-shot (1:60000,5:40000)."""
    return per_shot(text, "--train-episodes", "N", 0, "1:60000,5:40000")


def episodes_for(table: dict[int | None, int], shot: int) -> int:
    if None in table:
        return table[None]
    if shot not in table:
        raise BenchError(f"--train-episodes gives no count for {shot}-shot training; add {shot}:N "
                         f"(it has {', '.join(f'{key}:{value}' for key, value in table.items())})")
    return table[shot]


def path_option(text: str | None) -> Path | None:
    return Path(text).expanduser() if text else None


def per_shot_ways(text: str | None) -> dict[int | None, int]:
    """--train-way: ``30`` for every cell ({None: 30}), or ``1:30,5:20``, a training way per
    test shot (Snell et al. train 1-shot models 30-way, 5-shot models 20-way); a shot not
    listed trains at its test way."""
    return {} if text is None else per_shot(text, "--train-way", "WAY", 2, "1:30,5:20")


def per_shot(text, option: str, unit: str, minimum: int, example: str) -> dict[int | None, int]:
    """One value for every cell ({None: value}), or ``SHOT:VALUE,...``, one per shot ({shot:
    value}), each value at least ``minimum``: the text of --train-episodes and --train-way
    (``unit`` names the value in errors; ``example`` is a valid per-shot text)."""
    text = str(text).strip()
    if ":" not in text:
        values = int_list(text, option, minimum, example)
        if len(values) > 1:
            raise BenchError(f"{option} takes one {unit}, or SHOT:{unit} per shot, got {text!r}; "
                             f"write e.g. {option} {example}")
        return {None: values[0]}
    table = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        shot, colon, value = item.partition(":")
        if not colon:
            raise BenchError(f"{option} {text!r} mixes {unit} and SHOT:{unit}: {item!r} is not "
                             f"SHOT:{unit}; write one {unit} for every shot, or one per shot, "
                             f"e.g. {option} {example}")
        numbers = []
        for part in (shot, value):
            try:
                numbers.append(int(part))
            except ValueError:
                raise BenchError(f"{option} {part.strip()!r} is not an integer, so {item!r} is "
                                 f"not SHOT:{unit}; write e.g. {option} {example}") from None
        key, number = numbers
        if key < 1:
            raise BenchError(f"{option} {item!r}: the shot must be positive, got {key}")
        if key in table:
            raise BenchError(f"{option} gives {key}-shot twice ({text}); give each shot one "
                             f"{unit}")
        if number < minimum:
            raise BenchError(f"{option} must be {_at_least(minimum)}, got {number}")
        table[key] = number
    return table


def count_option(text: str, option: str, allow_zero: bool = False) -> int:
    try:
        value = int(str(text))
    except ValueError:
        raise BenchError(f"{option} {text!r} is not an integer") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise BenchError(f"{option} must be {'≥ 0' if allow_zero else 'positive'}, got {value}")
    return value


def int_list(text: str, option: str, minimum: int | None = 1, example: str = "1,5",
             maximum: int | None = None) -> list[int]:
    """Comma-separated integers of a CLI option (each in [``minimum``, ``maximum``])."""
    values = []
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        try:
            value = int(item)
        except ValueError:
            raise BenchError(f"{option} {item!r} is not an integer; write e.g. {option} "
                             f"{example}") from None
        if minimum is not None and value < minimum:
            raise BenchError(f"{option} must be {_at_least(minimum)}, got {value}")
        if maximum is not None and value > maximum:
            raise BenchError(f"{option} must be at most {maximum}, got {value}")
        values.append(value)
    if not values:
        raise BenchError(f"{option} is empty; write e.g. {option} {example}")
    return values


def _at_least(minimum: int) -> str:
    if minimum == 1:
        return "positive integers"
    if minimum == 2:
        return "at least 2 (a 1-way task is always 100% correct)"
    return f"integers ≥ {minimum}"


def max_threads() -> int:
    """The most --threads accepted: 4 per logical core (more only slows torch down, or crashes)."""
    return 4 * (os.cpu_count() or 1)


def check_threads(threads: int | None) -> int | None:
    if threads is not None and not 1 <= threads <= max_threads():
        raise BenchError(f"--threads must be between 1 and {max_threads()} (4 × this machine's "
                         f"{os.cpu_count()} logical cores), got {threads}")
    return threads


def check_device(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` (what the runner supports), else a one-line error."""
    import re

    device = str(text).strip()
    if device == "cpu" or re.fullmatch(r"cuda(:\d+)?", device):
        return device
    raise BenchError(f"--device {text!r} is not supported; use cpu, cuda or cuda:N")


def out_dir_writable(path: str, option: str = "--out") -> Path:
    if not str(path).strip():
        raise BenchError(f"{option} is empty; pass {option} DIR (a folder for the results)")
    out = Path(path).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        # A probe of its own: two runs sharing one --out must not unlink each other's probe.
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as error:
        raise BenchError(f"{option} directory {out} is not writable ({error.strerror}); "
                         f"pass {option} DIR with a writable folder") from None
    return out
