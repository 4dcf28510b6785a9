"""The embedded glyphs dataset: split disjointness, drawings, determinism and the cache.

Most checks share one small build (4 drawings per class, built once per module); the font
catalogue behind it is memoised, so the extra builds for seeds and options only draw.
"""

from __future__ import annotations

import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import torch
from bench.datasets import glyphs
from bench.datasets.glyphs import Glyphs

from bench.data import SPLITS
from bench.errors import BenchError
from bench.registry import DATASETS, build_config

INSTANCES = 4


def make(cache_dir: Path, **options) -> Glyphs:
    return Glyphs(build_config(Glyphs.Config, {"instances": INSTANCES, **options}, "glyphs"),
                  cache_dir=cache_dir)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("glyphs-cache")


@pytest.fixture(scope="module")
def splits(cache_dir):
    dataset = make(cache_dir)
    return {split: dataset.load(split) for split in SPLITS}


def scripts_of(image_set) -> set[str]:
    return {name.split("/")[0] for name in image_set.class_names}


def test_registered_without_root():
    assert Glyphs.registry_name == "glyphs"
    assert DATASETS.register("glyphs")(Glyphs) is Glyphs  # same class again is not a duplicate
    assert not Glyphs.needs_root and Glyphs.channels == 1 and Glyphs.image_size == 28


def test_background_and_evaluation_scripts_are_disjoint(splits):
    assert not set(glyphs.BACKGROUND_SCRIPTS) & set(glyphs.EVALUATION_SCRIPTS)
    background = scripts_of(splits["train"]) | scripts_of(splits["val"])
    assert background <= set(glyphs.BACKGROUND_SCRIPTS)
    assert scripts_of(splits["test"]) <= set(glyphs.EVALUATION_SCRIPTS)


def test_split_classes_are_disjoint_and_many(splits):
    names = {split: set(image_set.class_names) for split, image_set in splits.items()}
    assert not names["train"] & names["val"]
    assert not (names["train"] | names["val"]) & names["test"]
    assert splits["train"].n_classes >= 60 and splits["val"].n_classes >= 20
    assert splits["test"].n_classes >= 20


def test_class_names_are_plain_letters(splits):
    for image_set in splits.values():
        assert len(set(image_set.class_names)) == image_set.n_classes
        for name in image_set.class_names:
            code = name.split("/")[1]
            char = code.split(" ")[1]
            assert code.startswith(f"U+{ord(char):04X} ")
            assert unicodedata.category(char).startswith("L")
            assert unicodedata.normalize("NFKD", char) == char  # no accented near-duplicates


def test_images_are_uint8_nonblank_with_contiguous_labels(splits):
    for split, image_set in splits.items():
        assert image_set.name == f"glyphs/{split}"
        assert image_set.images.dtype == torch.uint8
        assert tuple(image_set.images.shape[1:]) == (1, 28, 28)
        assert (image_set.images_per_class() == INSTANCES).all()
        assert set(np.unique(image_set.labels)) == set(range(image_set.n_classes))
        assert (image_set.images.amax(dim=(1, 2, 3)) >= 128).all()  # a visible stroke
        assert (image_set.images.float().mean(dim=(1, 2, 3)) < 128).all()  # white on black


def test_drawings_of_a_class_vary(splits):
    images = splits["test"].images.reshape(-1, INSTANCES, 28 * 28).float()
    spread = images.std(dim=1).mean(dim=1)
    assert (spread > 5).all()


def test_same_seed_same_arrays_in_a_fresh_cache(splits, tmp_path):
    again = make(tmp_path).load("test")
    assert torch.equal(again.images, splits["test"].images)
    assert again.class_names == splits["test"].class_names


def test_another_seed_draws_differently(splits, cache_dir):
    other = make(cache_dir, seed=1)
    assert not torch.equal(other.load("test").images, splits["test"].images)
    assert other.load("test").class_names == splits["test"].class_names  # scripts fixed
    assert set(other.load("val").class_names) != set(splits["val"].class_names)


def test_second_load_reads_the_cache(splits, cache_dir):
    files = sorted(cache_dir.glob("glyphs-*.npz"))
    start = time.perf_counter()
    again = make(cache_dir).load("train")
    assert time.perf_counter() - start < 2.0
    assert sorted(cache_dir.glob("glyphs-*.npz")) == files
    assert torch.equal(again.images, splits["train"].images)


def test_changed_option_builds_another_cache_file(splits, tmp_path):
    make(tmp_path, instances=INSTANCES).load("test")
    make(tmp_path, instances=2).load("test")
    assert len(list(tmp_path.glob("glyphs-*.npz"))) == 2


def test_summary_counts_every_class(splits, cache_dir):
    summary = make(cache_dir).summary()
    for split, image_set in splits.items():
        assert sum(summary[split].values()) == image_set.n_classes


def test_computer_modern_is_read_by_glyph_name():
    folder = glyphs.font_files()[0].parent
    roman = glyphs.read_face(folder / "cmr10.ttf")
    assert roman.codes["\u0393"] == 0xA1  # Γ sits at ¡ in matplotlib's cmr10
    assert roman.codes.get("\u00a1") != 0xA1  # and ¡ is not drawn by code point 0xA1
    extension = glyphs.read_face(folder / "cmex10.ttf")
    assert not [char for char in extension.codes if glyphs.script_of(char)]


def test_homoglyphs_are_one_class(splits):
    background = set(splits["train"].class_names) | set(splits["val"].class_names)
    assert "Latin/U+0041 A" in background
    assert "Cyrillic/U+0410 \u0410" not in background
    assert "Greek/U+0391 \u0391" not in splits["test"].class_names


@pytest.mark.parametrize("options", [{"val_fraction": 1.5}, {"instances": 0}, {"seed": -1},
                                     {"size": 4}, {"min_faces": 0}])
def test_bad_options_are_one_line_errors(options):
    with pytest.raises(BenchError, match="glyphs"):
        build_config(Glyphs.Config, options, "glyphs")
