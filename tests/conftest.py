"""Shared fixtures: a synthetic image set and a small, session-cached glyphs dataset."""

import numpy as np
import pytest
import torch

from bench.data import ImageSet


def synthetic_set(n_classes=12, per_class=20, size=28, seed=0, name="synthetic/train"):
    """Each class a random pattern plus noise: learnable in a few episodes."""
    generator = torch.Generator().manual_seed(seed)
    patterns = torch.rand(n_classes, 1, size, size, generator=generator)
    noise = torch.rand(n_classes * per_class, 1, size, size, generator=generator)
    images = patterns.repeat_interleave(per_class, 0) * 0.7 + 0.3 * noise
    labels = np.repeat(np.arange(n_classes), per_class)
    return ImageSet((images * 255).to(torch.uint8), labels,
                    [f"class{i}" for i in range(n_classes)], name)


@pytest.fixture
def synthetic():
    return synthetic_set()


@pytest.fixture(scope="session")
def glyph_cache(tmp_path_factory):
    """A cache directory in which the small glyphs variant used by the tests is built once."""
    return tmp_path_factory.mktemp("glyph-cache")
