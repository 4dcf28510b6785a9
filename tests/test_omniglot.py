"""The omniglot adapter on fixture trees in Omniglot's real layout, and on the real data if present.

The fixture has the real number of characters per part (964 background, 659 evaluation; a wrong
count is the loader's "partial dataset" error) but only 2 tiny drawings per character.
"""

import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from bench.datasets import omniglot
from bench.datasets.omniglot import Omniglot
from PIL import Image

from bench.errors import BenchError
from bench.registry import DATASETS, build_config

REAL_OMNIGLOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omniglot"
ALPHABETS = {"images_background": ("Back", 30), "images_evaluation": ("Eval", 20)}
DRAWINGS = 2


def drawing_png(seed: int) -> bytes:
    """A 1-bit 21×21 drawing: black strokes on white, as Omniglot's, and never
    rotation-symmetric."""
    pixels = np.ones((21, 21), dtype=bool)
    pixels[2:6, 2:12] = False  # a bar in the top-left makes every rotation distinct
    pixels[8 + seed % 10, 5:18] = False
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("1").save(buffer, format="PNG")
    return buffer.getvalue()


def fixture_members() -> dict[str, bytes]:
    """zip member name -> PNG bytes, with the real character count of each part."""
    members = {}
    for part, (prefix, n_alphabets) in ALPHABETS.items():
        for index in range(omniglot.PARTS[part]):
            alphabet = f"{prefix}_{index % n_alphabets:02d}"
            character = f"character{index // n_alphabets + 1:02d}"
            for drawing in range(DRAWINGS):
                name = f"{part}/{alphabet}/{character}/{index:04d}_{drawing + 1:02d}.png"
                members[name] = drawing_png(index + drawing)
    return members


@pytest.fixture(scope="module")
def zipped_root(tmp_path_factory) -> Path:
    """ROOT/images_background.zip and ROOT/images_evaluation.zip, like ../shared/data/omniglot."""
    root = tmp_path_factory.mktemp("omniglot-zips")
    members = fixture_members()
    for part in ALPHABETS:
        with zipfile.ZipFile(root / f"{part}.zip", "w") as archive:
            for name, data in members.items():
                if name.startswith(part):
                    archive.writestr(name, data)
    return root


@pytest.fixture()
def folder_root(zipped_root, tmp_path) -> Path:
    """ROOT/omniglot-py/images_background/... extracted, torchvision's layout."""
    for part in ALPHABETS:
        with zipfile.ZipFile(zipped_root / f"{part}.zip") as archive:
            archive.extractall(tmp_path / "omniglot-py")
    return tmp_path


@pytest.fixture(scope="module")
def vinyals(zipped_root, tmp_path_factory) -> Omniglot:
    """The default split of the zipped fixture, decoded once for the tests that only read it."""
    return adapter(zipped_root, tmp_path_factory.mktemp("omniglot-cache"))


def adapter(root, cache_dir, **options) -> Omniglot:
    config = build_config(Omniglot.Config, options, "dataset omniglot")
    return Omniglot(config, root=root, cache_dir=cache_dir)


def character_of(class_name: str) -> str:
    return class_name.rsplit("/rot", 1)[0]


def test_registered_with_its_metadata():
    assert DATASETS.get("omniglot") is Omniglot
    assert (Omniglot.channels, Omniglot.image_size, Omniglot.needs_root) == (1, 28, True)


def test_vinyals_split_sizes_from_zips(vinyals):
    dataset = vinyals
    for split, characters in omniglot.VINYALS_SIZES.items():
        images = dataset.load(split)
        assert images.n_classes == characters * 4
        assert images.images.shape == (characters * 4 * DRAWINGS, 1, 28, 28)
        assert np.array_equal(np.unique(images.labels), np.arange(characters * 4))
        assert (images.images_per_class() == DRAWINGS).all()
        assert images.name == f"omniglot/vinyals/{split}"
    train = {character_of(name) for name in dataset.load("train").class_names}
    test = {character_of(name) for name in dataset.load("test").class_names}
    val = {character_of(name) for name in dataset.load("val").class_names}
    assert not train & test and not train & val and not val & test


def test_vinyals_order_is_background_then_evaluation_sorted(vinyals):
    train, test = vinyals.load("train").class_names, vinyals.load("test").class_names
    assert train[:4] == [f"Back_00/character01/rot{degrees:03d}" for degrees in (0, 90, 180, 270)]
    assert train[4 * 33] == "Back_01/character01/rot000"  # Back_00 has 33 characters
    assert test[-1] == "Eval_19/character32/rot270"  # the last evaluation character


def test_rotations_are_separate_classes_of_rotated_drawings(vinyals):
    images = vinyals.load("test")
    pixels = images.images.numpy()
    for character in (0, 100, 422):
        upright = pixels[images.labels == character * 4]
        for turn in range(1, 4):
            rotated = pixels[images.labels == character * 4 + turn]
            assert np.array_equal(rotated, np.rot90(upright, k=turn, axes=(2, 3)))
            assert not np.array_equal(rotated, upright)


def test_strokes_are_bright_on_black(vinyals):
    pixels = vinyals.load("val").images.numpy()
    assert pixels.max() == 255 and np.median(pixels) == 0


def test_folder_layout_matches_zips(zipped_root, folder_root, tmp_path):
    from_zips = adapter(zipped_root, tmp_path / "a", split="lake").load("val")
    from_folders = adapter(folder_root, tmp_path / "b", split="lake").load("val")
    assert np.array_equal(from_zips.images.numpy(), from_folders.images.numpy())
    assert from_zips.class_names == from_folders.class_names


def test_lake_split_holds_out_the_last_background_alphabets(zipped_root, tmp_path):
    dataset = adapter(zipped_root, tmp_path, split="lake")
    assert dataset.config.rotations == "off"
    val_alphabets = {f"Back_{index}" for index in range(25, 30)}
    val_characters = 5 * 32  # Back_00..03 have 33 characters, the others 32
    assert dataset.load("train").n_classes == 964 - val_characters
    val = dataset.load("val")
    assert val.n_classes == val_characters
    assert {name.split("/")[0] for name in val.class_names} == val_alphabets
    assert dataset.load("test").n_classes == 659
    rotated = adapter(zipped_root, tmp_path, split="lake", rotations="on")
    assert rotated.load("test").n_classes == 659 * 4


def test_second_load_reads_the_cache(zipped_root, tmp_path, monkeypatch):
    adapter(zipped_root, tmp_path).load("train")
    first = sorted(tmp_path.glob("*.npz"))

    def no_decoding(*args):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(omniglot, "read_drawings", no_decoding)
    again = adapter(zipped_root, tmp_path)
    assert again.load("test").n_classes == 423 * 4
    assert sorted(tmp_path.glob("*.npz")) == first and len(first) == 1


@pytest.mark.parametrize("options", [{"size": "20"}, {"split": "lake"}, {"rotations": "off"}])
def test_changed_option_builds_a_new_cache(zipped_root, tmp_path, options):
    adapter(zipped_root, tmp_path).load("train")
    changed = adapter(zipped_root, tmp_path, **options)
    changed.load("train")
    assert len(list(tmp_path.glob("*.npz"))) == 2
    if "size" in options:
        assert changed.load("train").images.shape[-1] == 20


def test_changed_source_builds_a_new_cache(folder_root, tmp_path):
    adapter(folder_root, tmp_path).load("train")
    drawing = next((folder_root / "omniglot-py" / "images_evaluation").rglob("*.png"))
    drawing.write_bytes(drawing_png(7))
    os.utime(drawing, ns=(0, 10**18))
    adapter(folder_root, tmp_path).load("train")
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_missing_root_names_the_option_and_layout(tmp_path):
    with pytest.raises(BenchError, match="--data-root.*FEWSHOT_BENCH_DATA.*omniglot-py"):
        adapter(None, tmp_path).load("train")


def test_missing_part_names_layout_and_download(zipped_root, tmp_path):
    (tmp_path / "images_background.zip").write_bytes((zipped_root / "images_background.zip")
                                                     .read_bytes())
    with pytest.raises(BenchError, match="no images_evaluation.*--download") as error:
        adapter(tmp_path, tmp_path / "cache").load("train")
    assert "\n" not in str(error.value)


def test_partial_part_is_an_error(folder_root, tmp_path):
    character = folder_root / "omniglot-py" / "images_background" / "Back_03" / "character05"
    for drawing in character.iterdir():
        drawing.unlink()
    with pytest.raises(BenchError, match="963 characters in images_background, expected 964"):
        adapter(folder_root, tmp_path).load("train")


def test_unreadable_drawing_names_the_file(folder_root, tmp_path):
    broken = next((folder_root / "omniglot-py" / "images_evaluation").rglob("*.png"))
    broken.write_bytes(b"not a png")
    with pytest.raises(BenchError, match=re.escape(f"cannot read image {broken}")):
        adapter(folder_root, tmp_path).load("train")


def test_corrupt_zip_names_the_file(zipped_root, tmp_path):
    (tmp_path / "images_background.zip").write_bytes(b"PK but not a zip")
    (tmp_path / "images_evaluation.zip").write_bytes((zipped_root / "images_evaluation.zip")
                                                     .read_bytes())
    with pytest.raises(BenchError, match="images_background.zip"):
        adapter(tmp_path, tmp_path / "cache").load("train")


@pytest.mark.parametrize("options, message", [({"split": "random"}, "valid: vinyals, lake"),
                                              ({"rotations": "maybe"}, "valid: auto, on, off")])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(BenchError, match=message):
        build_config(Omniglot.Config, options, "dataset omniglot")


@pytest.fixture(scope="module")
def real_characters():
    if not REAL_OMNIGLOT.is_dir():
        pytest.skip(f"the real Omniglot is not at {REAL_OMNIGLOT} (../shared/data/omniglot)")
    return {part: omniglot.list_characters(omniglot.find_part(REAL_OMNIGLOT, part), part)
            for part in omniglot.PARTS}


@pytest.mark.realdata
def test_real_omniglot_counts_and_splits(real_characters):
    assert [len(real_characters[part]) for part in omniglot.PARTS] == [964, 659]
    assert all(len(character.files) == 20 for part in real_characters.values()
               for character in part)
    vinyals = omniglot.split_characters(real_characters, "vinyals")
    assert {split: len(members) for split, members in vinyals.items()} == omniglot.VINYALS_SIZES
    lake = omniglot.split_characters(real_characters, "lake")
    assert len(lake["train"]) + len(lake["val"]) == 964 and len(lake["test"]) == 659
    for rule in (vinyals, lake):
        keys = {split: {(c.alphabet, c.name) for c in members} for split, members in rule.items()}
        assert not keys["train"] & keys["test"] and not keys["val"] & keys["test"]


@pytest.mark.realdata
@pytest.mark.slow
def test_real_omniglot_loads_vinyals_and_caches(real_characters, tmp_path, monkeypatch):
    dataset = adapter(REAL_OMNIGLOT, tmp_path)
    sizes = {split: dataset.load(split).images.shape for split in omniglot.VINYALS_SIZES}
    assert sizes == {split: (characters * 4 * 20, 1, 28, 28)
                     for split, characters in omniglot.VINYALS_SIZES.items()}
    train = {character_of(name) for name in dataset.load("train").class_names}
    assert not train & {character_of(name) for name in dataset.load("test").class_names}
    monkeypatch.setattr(omniglot, "read_drawings", None)  # a second start must not decode
    assert adapter(REAL_OMNIGLOT, tmp_path).load("test").n_classes == 423 * 4
