"""Glyphs, the embedded default dataset: an Omniglot-like set drawn from matplotlib's own fonts.

Nothing to download: a class is one Unicode letter, an alphabet one script, and an image one drawing
of the letter by a (font face, random affine, stroke width) pair, rendered 3× large with PIL and
reduced to size×size grey, white strokes on black like Omniglot here. Background and evaluation
scripts are disjoint, as Omniglot's alphabets are; validation classes are held out of the background
scripts, a fixed fraction of each. All three splits are built together once per configuration and
cached. docs/glyphs.md lists the scripts, class counts and jitter ranges.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from bench.data import DatasetAdapter, ImageSet, cached_arrays
from bench.errors import BenchError
from bench.registry import DATASETS

GLYPHS_FORMAT = 1  # bump when the drawings change for the same options, so old caches are dropped
BACKGROUND_SCRIPTS = ("Latin", "Cyrillic", "Canadian Syllabics", "Arabic", "Lisu")
EVALUATION_SCRIPTS = ("Greek", "Coptic", "Armenian", "Georgian", "Hebrew", "Lao", "Old Italic")
FONT_PATTERNS = ("DejaVuSans.ttf", "DejaVuSans-*.ttf", "DejaVuSerif.ttf", "DejaVuSerif-*.ttf",
                 "DejaVuSansMono*.ttf", "STIXGeneral*.ttf", "cm*.ttf")  # in matplotlib's fonts/ttf
LETTER_CATEGORIES = ("Lu", "Ll", "Lt", "Lo")  # Lm (modifier letters, tone marks) are mostly dots
# cmmi's variant Greek by TeX's naming, which the Adobe glyph list reads otherwise (checked by eye).
TEX_GLYPH_NAMES = {"epsilon1": "\u03f5", "phi": "\u03d5", "phi1": "\u03c6"}

OVERSAMPLE = 3  # drawn at 3× the side, then box-reduced: antialiased strokes
EM_FRACTION = 0.8  # the em as a fraction of the side, for every letter: case and height differ
ROTATION_DEGREES = 12.0  # uniform in ±12°
SHEAR = 0.15  # uniform in ±0.15 (x += shear·y)
SCALE = (0.8, 1.1)  # uniform, relative to the em size; wide glyphs are shrunk to fit
SHIFT = 0.06  # uniform in ±6% of the side, per axis
STROKES = (0, 1, 2)  # extra outline width in pixels of the 3× canvas (0 to ⅔ px at the side)
MIN_EXTENT = 0.3  # a face draws a letter only if its ink spans 30% of the em
DUPLICATE_DISTANCE = 0.1  # ‖a − b‖² / max(‖a‖², ‖b‖²) of plain drawings under which two are one
REFERENCE_SIDE = 28  # the side at which letters are checked and compared, whatever the image size


@dataclass(frozen=True)
class Face:
    """One font file and the letters it really draws, each mapped to the code point that draws it
    (the Computer Modern files put Greek capitals at Latin-1 code points, cmsy symbols at a–z)."""

    path: Path
    codes: dict[str, int]


@dataclass(frozen=True)
class Letter:
    script: str
    char: str
    faces: tuple[Face, ...]

    @property
    def name(self) -> str:
        return f"{self.script}/U+{ord(self.char):04X} {self.char}"


@DATASETS.register("glyphs")
class Glyphs(DatasetAdapter):
    """Letters of 12 Unicode scripts drawn from matplotlib's fonts; no download, cached once."""

    channels = 1
    image_size = 28
    needs_root = False
    description = "Embedded Omniglot-like letters from matplotlib's fonts, 28×28 grey; no download"

    @dataclass(frozen=True)
    class Config:
        seed: int = field(default=0, metadata={
            "help": "seed of the drawings (font, affine, stroke) and of the validation classes"})
        instances: int = field(default=20, metadata={"help": "drawings per class"})
        size: int = field(default=28, metadata={"help": "image side in pixels"})
        val_fraction: float = field(default=0.15, metadata={
            "help": "fraction of each background script's classes held out for validation"})
        min_faces: int = field(default=3, metadata={
            "help": "keep only letters that at least this many font faces draw"})

        def validate(self) -> None:
            if self.seed < 0:
                raise BenchError(f"glyphs seed={self.seed}; use a seed >= 0")
            if not 1 <= self.instances <= 1000:
                raise BenchError(f"glyphs instances={self.instances}; use 1 to 1000")
            if not 8 <= self.size <= 256:
                raise BenchError(f"glyphs size={self.size}; use a side between 8 and 256")
            if not 0.0 < self.val_fraction < 1.0:
                raise BenchError(f"glyphs val_fraction={self.val_fraction}; use 0 < f < 1")
            if self.min_faces < 1:
                raise BenchError(f"glyphs min_faces={self.min_faces}; use at least 1")

    def load_split(self, split: str) -> ImageSet:
        if not hasattr(self, "_arrays"):
            self._arrays = self._load_arrays()
        return ImageSet(images=torch.from_numpy(self._arrays[f"{split}_images"]),
                        labels=self._arrays[f"{split}_labels"],
                        class_names=self._arrays[f"{split}_classes"].tolist(),
                        name=f"glyphs/{split}")

    def _load_arrays(self) -> dict[str, np.ndarray]:
        self.config.validate()
        key = {"dataset": "glyphs", "format": GLYPHS_FORMAT, **asdict(self.config),
               **renderer_identity()}
        return cached_arrays(self.cache_dir, key, lambda: build_arrays(self.config))

    def summary(self) -> dict[str, dict[str, int]]:
        """Classes per script in each split, e.g. {"test": {"Greek": 38, ...}, ...} (builds or
        loads the cache)."""
        counts: dict[str, dict[str, int]] = {}
        for split in ("train", "val", "test"):
            scripts = [name.split("/")[0] for name in self.load(split).class_names]
            counts[split] = {script: scripts.count(script) for script in dict.fromkeys(scripts)}
        return counts


def font_files() -> list[Path]:
    """The font files used, in a fixed order (DejaVu Sans first: it draws the reference images)."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    files = [path for pattern in FONT_PATTERNS for path in sorted(folder.glob(pattern))]
    if not files:
        raise BenchError(f"no fonts found in {folder}; reinstall matplotlib")
    return files


def renderer_identity() -> dict:
    """What the drawings depend on besides the options: font files and renderer versions."""
    import matplotlib
    import PIL
    from PIL import features

    return {"matplotlib": matplotlib.__version__, "pillow": PIL.__version__,
            "freetype": features.version("freetype2"),
            "fonts": [[path.name, path.stat().st_size] for path in font_files()]}


@cache
def load_font(path: Path, pixels: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), pixels, layout_engine=ImageFont.Layout.BASIC)


def read_face(path: Path) -> Face:
    """A face's letters from its cmap, trusting glyph names over code points where they disagree:
    matplotlib's Computer Modern files are TeX-encoded behind a Latin-1 cmap."""
    from fontTools import agl
    from fontTools.ttLib import TTFont

    cmap = TTFont(str(path), lazy=True).getBestCmap()
    if not path.name.startswith("cm"):
        return Face(path, {chr(code): code for code in cmap})
    codes = {}
    for code, glyph_name in sorted(cmap.items()):
        meaning = TEX_GLYPH_NAMES.get(glyph_name) or _greek(glyph_name) or agl.toUnicode(glyph_name)
        if len(meaning) == 1:
            codes.setdefault(meaning, code)
    return Face(path, codes)


def _greek(glyph_name: str) -> str:
    case = "CAPITAL" if glyph_name[:1].isupper() else "SMALL"
    try:
        return unicodedata.lookup(f"GREEK {case} LETTER {glyph_name.upper()}")
    except KeyError:
        return ""


def script_of(char: str) -> str | None:
    """The script of a plain letter of one of the chosen scripts, else None. Letters whose
    compatibility decomposition differs (accented, ligatures, math styles, presentation forms)
    are near-duplicates of others and are left out."""
    if unicodedata.category(char) not in LETTER_CATEGORIES:
        return None
    if unicodedata.normalize("NFKD", char) != char:
        return None
    name = unicodedata.name(char, "")
    for script in BACKGROUND_SCRIPTS + EVALUATION_SCRIPTS:
        if name.startswith(script.upper() + " "):
            return script
    return None


def catalogue(faces: list[Face], min_faces: int, side: int) -> list[Letter]:
    """Letters drawn visibly by at least ``min_faces`` faces, by script order then code point."""
    order = {script: rank for rank, script in enumerate(BACKGROUND_SCRIPTS + EVALUATION_SCRIPTS)}
    pixels = font_pixels(side)
    letters = []
    for char in sorted({char for face in faces for char in face.codes}):
        script = script_of(char)
        if script is None:
            continue
        drawing = tuple(face for face in faces if char in face.codes
                        and draws_visibly(load_font(face.path, pixels), chr(face.codes[char])))
        if len(drawing) >= min_faces:
            letters.append(Letter(script, char, drawing))
    return sorted(letters, key=lambda letter: (order[letter.script], ord(letter.char)))


def draws_visibly(font: ImageFont.FreeTypeFont, text: str) -> bool:
    """Whether the glyph has ink spanning MIN_EXTENT of the em: not blank, not a mere dot or tick
    (Canadian finals, the Arabic high hamza), which no drawing of a letter should be."""
    box = font.getmask(text).getbbox()
    return box is not None and max(box[2] - box[0], box[3] - box[1]) >= MIN_EXTENT * font.size


def font_pixels(side: int) -> int:
    return round(EM_FRACTION * side * OVERSAMPLE)


def drop_duplicates(letters: list[Letter], side: int) -> list[Letter]:
    """Letters whose plain drawing in their first face differs from every earlier letter's.

    Cross-script homoglyphs (Latin A, Cyrillic А, Greek Α) and letters that differ from another by
    a small bar or hook (Đ, ƀ) would otherwise be classes of near-identical images. The first in
    script order keeps the shape, so evaluation never repeats a background shape.
    """
    if not letters:
        return []
    plain = np.stack([draw(letter, 0, 0, np.eye(2), np.zeros(2), side) for letter in letters])
    vectors = plain.reshape(len(letters), -1).astype(np.float64) / 255.0
    norms = (vectors**2).sum(axis=1)
    distances = norms[:, None] + norms[None, :] - 2 * vectors @ vectors.T
    close = distances < DUPLICATE_DISTANCE * np.maximum(norms[:, None], norms[None, :])
    kept: list[int] = []
    for index in range(len(letters)):
        if not close[index, kept].any():
            kept.append(index)
    return [letters[index] for index in kept]


@lru_cache(maxsize=512)
def glyph_image(path: Path, pixels: int, code: int, stroke: int) -> Image.Image:
    """The glyph alone, cropped to its ink box (outline ``stroke`` pixels wider)."""
    font = load_font(path, pixels)
    text = chr(code)
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    image = Image.new("L", (max(1, right - left), max(1, bottom - top)))
    ImageDraw.Draw(image).text((-left, -top), text, fill=255, font=font, stroke_width=stroke,
                               stroke_fill=255)
    return image


def draw(letter: Letter, face_index: int, stroke: int, linear: np.ndarray, shift: np.ndarray,
         side: int) -> np.ndarray:
    """One side×side drawing: the glyph's box centre mapped to the canvas centre plus ``shift``
    (a fraction of the side) by ``linear``, shrunk if it would leave the canvas."""
    face = letter.faces[face_index]
    glyph = glyph_image(face.path, font_pixels(side), face.codes[letter.char], stroke)
    canvas = side * OVERSAMPLE
    half = np.array(glyph.size) / 2
    corners = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]]) * half @ linear.T
    extent = (corners.max(axis=0) - corners.min(axis=0)).max()
    limit = canvas * (1 - 2 * SHIFT) - 2 * OVERSAMPLE  # a pixel of margin at the worst shift
    if extent > limit:
        linear = linear * (limit / extent)
    inverse = np.linalg.inv(linear)
    offset = half - inverse @ (canvas / 2 + shift * canvas)
    data = (*inverse[0], offset[0], *inverse[1], offset[1])
    out = glyph.transform((canvas, canvas), Image.Transform.AFFINE, data,
                          resample=Image.Resampling.BILINEAR)
    return np.asarray(out.reduce(OVERSAMPLE), dtype=np.uint8)


def draw_class(letter: Letter, config) -> np.ndarray:
    """``config.instances`` drawings [n, side, side], seeded by (seed, code point) so a letter's
    images do not depend on which other letters exist. Faces go round-robin in a seeded order."""
    rng = np.random.default_rng([config.seed, ord(letter.char)])
    face_order = rng.permutation(len(letter.faces))
    drawings = []
    for index in range(config.instances):
        stroke = int(rng.choice(STROKES))
        angle = np.deg2rad(rng.uniform(-ROTATION_DEGREES, ROTATION_DEGREES))
        shear = rng.uniform(-SHEAR, SHEAR)
        scale = rng.uniform(*SCALE)
        shift = rng.uniform(-SHIFT, SHIFT, size=2)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        linear = scale * rotation @ np.array([[1.0, shear], [0.0, 1.0]])
        face_index = int(face_order[index % len(face_order)])
        drawings.append(draw(letter, face_index, stroke, linear, shift, config.size))
    return np.stack(drawings)


@lru_cache(maxsize=4)
def list_letters(min_faces: int) -> list[Letter]:
    """The classes: the fonts' letters in the chosen scripts, near-duplicates dropped (≈2 s)."""
    faces = [read_face(path) for path in font_files()]
    return drop_duplicates(catalogue(faces, min_faces, REFERENCE_SIDE), REFERENCE_SIDE)


def split_letters(letters: list[Letter], val_fraction: float, seed: int
                  ) -> dict[str, list[Letter]]:
    """Background scripts give train and val (each script loses round(fraction·n) letters, drawn
    with ``seed``, to val); evaluation scripts give test."""
    rng = np.random.default_rng([seed, 0x110000])  # past every code point: not a letter's stream
    train, val = [], []
    for script in BACKGROUND_SCRIPTS:
        members = [letter for letter in letters if letter.script == script]
        held_out = set(rng.permutation(len(members))[:round(val_fraction * len(members))].tolist())
        for index, letter in enumerate(members):
            (val if index in held_out else train).append(letter)
    test = [letter for letter in letters if letter.script in EVALUATION_SCRIPTS]
    return {"train": train, "val": val, "test": test}


def build_arrays(config) -> dict[str, np.ndarray]:
    """All three splits: images uint8 [N, 1, side, side] class after class, labels, class names."""
    letters = list_letters(config.min_faces)
    arrays = {}
    for split, members in split_letters(letters, config.val_fraction, config.seed).items():
        if not members:
            raise BenchError(f"glyphs has no {split} classes with min_faces={config.min_faces} "
                             f"and val_fraction={config.val_fraction}; lower them")
        images = np.stack([draw_class(letter, config) for letter in members])
        arrays[f"{split}_images"] = images.reshape(-1, 1, config.size, config.size)
        arrays[f"{split}_labels"] = np.repeat(np.arange(len(members), dtype=np.int64),
                                              config.instances)
        arrays[f"{split}_classes"] = np.asarray([letter.name for letter in members])
    return arrays
