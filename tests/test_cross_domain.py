"""`bench run --test-dataset`: a model trained on mini-imagenet fixtures tested on CUB fixtures
(both RGB, 16×16), found by its training id and never trained again; refusals in one line."""

import pickle
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from bench.datasets import mini_imagenet
from bench.datasets.cub import CUB
from helpers import without_progress
from PIL import Image

from bench import results
from bench.cli import main
from bench.core import models
from bench.core.config import Cell, MethodSpec, TrainConfig
from bench.core.episodes import fixed_episodes
from bench.core.model import build_model
from bench.core.precision import resolve_precision
from bench.evaluate.episodic import evaluate
from bench.registry import build_config

SIDE = 16
TRAIN = ["--methods", "protonet", "--ways", "5", "--shots", "1", "--query", "2",
         "--train-query", "2", "--train-episodes", "3", "--val-every", "0",
         "--test-episodes", "6", "--checkpoint-every", "0", "-D", f"size={SIDE}"]


def write_mini(folder: Path) -> None:
    """learn2learn's pickles: 6 train, 2 val, 5 test classes of 4 noise images each."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 2), ("test", 5)):
        images = rng.integers(0, 256, (count * 4, SIDE, SIDE, 3), dtype=np.uint8)
        classes = {f"n{split}{index}": list(range(index * 4, index * 4 + 4))
                   for index in range(count)}
        with open(folder / mini_imagenet.PICKLES[split], "wb") as file:
            pickle.dump({"image_data": images, "class_dict": classes}, file, protocol=4)


def write_cub(folder: Path) -> None:
    """20 classes × 4 photos in the official layout; closer-look gives them 10/5/5 classes."""
    rng = np.random.default_rng(1)
    rows = {"images": [], "labels": []}
    for class_id in range(1, 21):
        name = f"{class_id:03d}.Bird_{class_id}"
        (folder / "images" / name).mkdir(parents=True)
        for number in range(4):
            file = f"{name}/Bird_{number}.jpg"
            Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(
                folder / "images" / file)
            rows["images"].append(f"{len(rows['images']) + 1} {file}")
            rows["labels"].append(f"{len(rows['labels']) + 1} {class_id}")
    (folder / "classes.txt").write_text(
        "".join(f"{i} {i:03d}.Bird_{i}\n" for i in range(1, 21)))
    (folder / "images.txt").write_text("\n".join(rows["images"]) + "\n")
    (folder / "image_class_labels.txt").write_text("\n".join(rows["labels"]) + "\n")


@pytest.fixture()
def roots(tmp_path) -> dict[str, Path]:
    write_mini(tmp_path / "mini")
    write_cub(tmp_path / "cub" / "CUB_200_2011")
    return {"mini": tmp_path / "mini", "cub": tmp_path / "cub", "tmp": tmp_path}


@pytest.fixture()
def run(tmp_path, monkeypatch):
    """`bench ARGS` in this process: (exit code, stderr); signal handlers restored after."""
    monkeypatch.setenv("FEWSHOT_BENCH_CACHE", str(tmp_path / "cache"))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def bench(*args, capsys=None):
        with pytest.raises(SystemExit) as exit_info:
            main(list(args))
        return exit_info.value.code

    yield bench
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def cross(roots, out: str, *extra) -> list[str]:
    return ["run", "--dataset", "mini-imagenet", "--data-root", str(roots["mini"]), *TRAIN,
            "--test-dataset", "cub", "--test-data-root", str(roots["cub"]), "-T", f"size={SIDE}",
            "--out", str(roots["tmp"] / out), *extra]


def test_trained_model_is_tested_on_the_other_dataset(roots, run, capsys):
    trained_out = roots["tmp"] / "trained"
    assert run("run", "--dataset", "mini-imagenet", "--data-root", str(roots["mini"]), *TRAIN,
               "--out", str(trained_out)) == 0
    (model_file,) = (trained_out / "models").glob("*.pt")
    stamp = model_file.stat().st_mtime_ns
    capsys.readouterr()
    assert run(*cross(roots, "cross", "--models-from", str(trained_out), "--dry-run")) == 0
    plan = capsys.readouterr().out  # the stored model is named, no training is planned
    assert (f"protonet mini-imagenet→cub 5-way 1-shot seed 0: evaluate the model trained on "
            f"mini-imagenet, stored in {trained_out} (trains nothing)") in plan
    assert "0 trainings to run" in plan and "pre-training" not in plan
    assert not (roots["tmp"] / "cross" / "results.csv").exists()
    assert run(*cross(roots, "cross", "--models-from", str(trained_out))) == 0
    row = pd.read_csv(roots["tmp"] / "cross" / "results.csv").iloc[0]
    assert (row["dataset"], row["train_dataset"], row["split"]) == (
        "cub", "mini-imagenet",
        f"closer-look (size={SIDE}) [nonstandard: 10/5/5 classes, standard 100/50/50]")
    assert row["schema_version"] == results.SCHEMA_VERSION == 4
    # the stored model's training fingerprint, not the test data's
    assert row["train_data"] == torch.load(model_file, weights_only=False)["train_data"]
    assert not (roots["tmp"] / "cross" / "models").exists()  # nothing trained
    assert model_file.stat().st_mtime_ns == stamp
    # The same numbers by hand: the stored model on CUB's closer-look test episodes.
    cell = Cell(MethodSpec("protonet"), "mini-imagenet", (("size", str(SIDE)),), 5, 1, 2, 6, 0,
                TrainConfig(episodes=3, query=2, val_every=0, checkpoint_every=0,
                            precision=resolve_precision("auto", "cpu")))  # the run's default
    assert model_file == models.model_path(trained_out, cell)
    model = build_model(cell, 3)
    models.load_model(model_file, cell, model)
    test_set = CUB(build_config(CUB.Config, {"size": str(SIDE)}, "cub"), roots["cub"],
                   roots["tmp"] / "cache").load("test")
    episodes = fixed_episodes(test_set, 5, 1, 2, 6, 0)
    expected = evaluate(model, test_set, episodes, torch.device("cpu"))
    stored = np.load(roots["tmp"] / "cross" / "per_episode" / f"{row['cell_id']}.npy")
    assert np.array_equal(stored, expected) and row["episodes_hash"] == episodes.hash
    assert run(*cross(roots, "cross", "--models-from", str(trained_out))) == 0
    assert "1 already finished" in capsys.readouterr().out


def one_line_error(run, capsys, argv) -> str:
    assert run(*argv) == 2
    lines = without_progress(capsys.readouterr().err)
    assert len(lines) == 1 and "Traceback" not in lines[0]
    return lines[0]


def test_missing_model_is_refused_not_trained(roots, run, capsys):
    message = one_line_error(run, capsys, cross(roots, "cross"))
    assert "no trained model for protonet mini-imagenet→cub 5-way 1-shot seed 0" in message
    assert "--models-from" in message
    assert not (roots["tmp"] / "cross" / "models").exists()


def test_a_models_from_folder_that_does_not_exist_is_named_so(roots, run, capsys):
    missing = roots["tmp"] / "no-such-run"
    message = one_line_error(run, capsys, cross(roots, "cross", "--models-from", str(missing)))
    assert message == (f"error: --models-from {missing} does not exist; pass the --out DIR of the "
                       "run that trained the models")


def test_model_of_the_other_precision_is_named_with_the_flag(roots, run, capsys):
    trained_out = str(roots["tmp"] / "trained")
    assert run("run", "--dataset", "mini-imagenet", "--data-root", str(roots["mini"]), *TRAIN,
               "--precision", "fp32", "--out", trained_out) == 0
    capsys.readouterr()
    message = one_line_error(run, capsys, cross(roots, "cross", "--models-from", trained_out,
                                                "--precision", "bf16"))
    assert "a model trained in fp32 is stored there: add --precision fp32" in message
    assert run(*cross(roots, "cross", "--models-from", trained_out, "--precision", "fp32")) == 0


def test_channels_that_differ_are_refused(roots, run, capsys):
    argv = ["run", "--dataset", "glyphs", "--methods", "protonet", "--test-dataset", "cub",
            "--test-data-root", str(roots["cub"]), "--out", str(roots["tmp"] / "out")]
    message = one_line_error(run, capsys, argv)
    assert "glyphs has 1-channel images and cub 3-channel ones" in message


def test_image_side_that_differs_is_refused_with_the_fix(roots, run, capsys):
    argv = cross(roots, "cross")
    argv[argv.index("-T") + 1] = "size=20"
    message = one_line_error(run, capsys, argv)
    assert f"trained on {SIDE}×{SIDE} mini-imagenet images but cub gives 20×20" in message
    assert f"add -T size={SIDE}" in message


@pytest.mark.parametrize("extra, expected", [
    (["-T", "split=frn"], "-T, --test-data-root and --models-from apply to --test-dataset"),
    (["--models-from", "x"], "apply to --test-dataset"),
])
def test_test_dataset_options_need_a_test_dataset(run, capsys, extra, expected):
    assert expected in one_line_error(run, capsys, ["run", "--methods", "protonet", *extra])


def test_unknown_test_dataset_option_is_named(roots, run, capsys):
    message = one_line_error(run, capsys, cross(roots, "cross", "-T", "colour=red"))
    assert "unknown parameter 'colour' for test dataset cub" in message


def test_in_domain_cells_keep_their_ids():
    """Only cross-domain cells carry the test dataset, so finished cells of older runs still
    count as finished; both share the training id, which is how the model is found."""
    plain = Cell(MethodSpec("protonet"), "mini-imagenet", (), 5, 1, 15, 600, 0)
    crossed = Cell(MethodSpec("protonet"), "mini-imagenet", (), 5, 1, 15, 600, 0,
                   test_dataset="cub")
    assert "test_dataset" not in plain.resolved() and plain.tested_dataset == "mini-imagenet"
    assert crossed.resolved()["test_dataset_params"]["split"] == "closer-look"
    assert plain.training_id == crossed.training_id and plain.cell_id != crossed.cell_id


def test_test_classes_the_model_trained_on_are_refused(roots, run, capsys):
    """FRN's test classes are closer-look training classes: cub → cub -T split=frn is refused."""
    cub_run = ["run", "--dataset", "cub", "--data-root", str(roots["cub"]), *TRAIN,
               "--out", str(roots["tmp"] / "cub")]
    assert run(*cub_run) == 0
    capsys.readouterr()
    message = one_line_error(run, capsys, [*cub_run, "--test-dataset", "cub", "-T", "split=frn",
                                           "-T", f"size={SIDE}"])
    assert "5 of the 5 test classes of cub/frn/test are training classes of the model" in message
    assert run(*cub_run, "--test-dataset", "cub", "-T", f"size={SIDE}") == 0  # closer-look: none
