"""Episodes: sampled by learn2learn (Taskset = TaskDataset), seeded by the harness, fixed and
hashed for testing.

learn2learn's task transforms (NWays, KShots) draw from Python's global ``random`` module, so
seeding torch does not fix its episodes. Each sampler here owns a ``random.Random`` and swaps its
state into the global module only while learn2learn samples (``_global_random``), which makes the
episode stream a pure function of the seed, independent of anything else using ``random``, and
resumable (the state is saved with checkpoints).

learn2learn sees only a lightweight index dataset (index, label): it never loads an image. Images
are gathered from the split's uint8 tensor by the runner.
"""

from __future__ import annotations

import hashlib
import random
import signal
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from bench.data import ImageSet
from bench.errors import BenchError
from bench.l2l import learn2learn


@dataclass(frozen=True)
class Episode:
    """Indices into an ImageSet; class c of the episode owns rows c of ``support`` and ``query``."""

    support: torch.Tensor  # int64 [way, shot]
    query: torch.Tensor  # int64 [way, query]

    @property
    def way(self) -> int:
        return self.support.shape[0]

    def support_labels(self) -> torch.Tensor:
        return torch.arange(self.way).repeat_interleave(self.support.shape[1])

    def query_labels(self) -> torch.Tensor:
        return torch.arange(self.way).repeat_interleave(self.query.shape[1])

    def indices(self) -> torch.Tensor:
        """Support indices, then query indices, each class-major."""
        return torch.cat([self.support.reshape(-1), self.query.reshape(-1)])


class _IndexDataset(torch.utils.data.Dataset):
    def __init__(self, labels: np.ndarray):
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[int, int]:
        return index, int(self.labels[index])


def _collate(items: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return items


@contextmanager
def _global_random(rng: random.Random):
    """Run with ``rng``'s state in the global ``random`` module; copy the advanced state back."""
    saved = random.getstate()
    random.setstate(rng.getstate())
    try:
        yield
    finally:
        rng.setstate(random.getstate())
        random.setstate(saved)


def check_episode_shape(image_set: ImageSet, way: int, shot: int, query: int,
                        options: tuple[str, str, str] = ("--ways", "--shots", "--query")) -> None:
    """A one-line error unless ``way`` classes with ``shot + query`` images each can be drawn;
    ``options`` are the command-line options the message tells the user to change."""
    for name, value in (("way", way), ("shot", shot), ("query", query)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise BenchError(f"{name} must be a positive integer, got {value!r}")
    ways, shots, queries = options
    if way > image_set.n_classes:
        raise BenchError(f"way={way} is more than the {image_set.n_classes} classes of "
                         f"{image_set.name}; use {ways} {image_set.n_classes} or fewer")
    smallest = int(image_set.images_per_class().min())
    if shot + query > smallest:
        raise BenchError(f"shot+query={shot}+{query} is more than the {smallest} images of the "
                         f"smallest class of {image_set.name}; lower {shots} or {queries}")


class EpisodeSampler:
    """An endless, seeded stream of ``way``-way ``shot``-shot ``query``-query episodes."""

    def __init__(self, image_set: ImageSet, way: int, shot: int, query: int, seed: int):
        check_episode_shape(image_set, way, shot, query)
        self.way, self.shot, self.query = way, shot, query
        self.rng = random.Random(seed)
        data = learn2learn().data
        by_label: dict[int, list[int]] = {}
        for index, label in enumerate(image_set.labels.tolist()):
            by_label.setdefault(label, []).append(index)
        meta = data.MetaDataset(_IndexDataset(image_set.labels),
                                labels_to_indices=dict(sorted(by_label.items())))
        transforms = [data.transforms.NWays(meta, way),
                      data.transforms.KShots(meta, shot + query),
                      data.transforms.LoadData(meta)]
        self.taskset = data.Taskset(meta, transforms, num_tasks=-1, task_collate=_collate)

    def sample(self) -> Episode:
        with _global_random(self.rng):
            items = self.taskset.sample()
        return self._split(items)

    def _split(self, items: list[tuple[int, int]]) -> Episode:
        """Rows of indices per class, classes in learn2learn's random order."""
        pairs = np.asarray(items, dtype=np.int64)
        labels = pairs[:, 1].reshape(self.way, -1)
        if (labels == labels[:, :1]).all():  # learn2learn's class-major blocks: reshape
            rows = torch.from_numpy(pairs[:, 0].reshape(self.way, -1))
        else:
            per_class: dict[int, list[int]] = {}
            for index, label in items:
                per_class.setdefault(label, []).append(index)
            rows = torch.tensor(list(per_class.values()), dtype=torch.int64)
        return Episode(support=rows[:, : self.shot], query=rows[:, self.shot:])

    def state(self) -> tuple:
        return self.rng.getstate()

    def set_state(self, state: tuple) -> None:
        self.rng.setstate(state)


@dataclass(frozen=True)
class EpisodeList:
    """A fixed list of test episodes: arrays [n, way, shot] and [n, way, query], and their hash."""

    support: torch.Tensor
    query: torch.Tensor
    hash: str

    def __len__(self) -> int:
        return len(self.support)

    def __getitem__(self, i: int) -> Episode:
        return Episode(self.support[i], self.query[i])

    def used_images(self) -> torch.Tensor:
        """The distinct image indices the episodes use, sorted: what cached evaluation embeds."""
        return torch.unique(torch.cat([self.support.reshape(-1), self.query.reshape(-1)]))


def fixed_episodes(image_set: ImageSet, way: int, shot: int, query: int, count: int,
                   seed: int) -> EpisodeList:
    """The test episodes of (dataset split, way, shot, query, count, seed): the same for every
    method."""
    if not isinstance(count, (int, np.integer)) or count < 1:
        raise BenchError(f"the number of test episodes must be a positive integer, got {count!r}")
    key = (image_set.name, image_set.fingerprint(), way, shot, query, count, seed)
    if key not in _EPISODE_LISTS:
        if len(_EPISODE_LISTS) >= 16:
            _EPISODE_LISTS.pop(next(iter(_EPISODE_LISTS)))
        _EPISODE_LISTS[key] = _sample_episode_list(image_set, key)
    return _EPISODE_LISTS[key]


_EPISODE_LISTS: dict[tuple, EpisodeList] = {}


def _sample_episode_list(image_set: ImageSet, key: tuple) -> EpisodeList:
    _, _, way, shot, query, count, seed = key
    sampler = EpisodeSampler(image_set, way, shot, query, seed)
    episodes = [sampler.sample() for _ in range(count)]
    support = torch.stack([episode.support for episode in episodes])
    query_rows = torch.stack([episode.query for episode in episodes])
    digest = hashlib.sha256()
    digest.update("|".join(map(str, key)).encode())
    digest.update(support.numpy().tobytes())
    digest.update(query_rows.numpy().tobytes())
    return EpisodeList(support, query_rows, digest.hexdigest()[:16])


class _EpisodeStream(torch.utils.data.IterableDataset):
    """Runs in a DataLoader worker: the sampler's episodes, their uint8 images, and the sampler's
    state after each episode (so the main process can checkpoint the consumed position)."""

    def __init__(self, sampler: EpisodeSampler, images: torch.Tensor):
        self.sampler, self.images = sampler, images

    def __iter__(self):
        while True:
            episode = self.sampler.sample()
            yield episode, self.images[episode.indices()], self.sampler.state()


def _as_is(item):
    return item


def _ignore_signals(_worker_id: int) -> None:
    """Ctrl-C and SIGTERM are the main process's: it checkpoints, then shuts the worker down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@contextmanager
def episode_feed(sampler: EpisodeSampler, images: torch.Tensor, prefetch: int = 0,
                 pin_memory: bool = False) -> Iterator[Iterator[tuple[Episode, torch.Tensor]]]:
    """An endless iterator of (episode, its uint8 images: support then query rows).

    ``prefetch`` > 0 samples that many episodes ahead in one DataLoader worker process, in
    parallel with training. The episode stream is the same as inline sampling (one worker runs
    the sampler's own sequence; several workers could not without changing it), and
    ``sampler.state()`` follows the consumed episodes, so checkpoints resume exactly.
    """
    if prefetch <= 0:
        def inline():
            while True:
                episode = sampler.sample()
                yield episode, images[episode.indices()]

        yield inline()
        return
    loader = torch.utils.data.DataLoader(
        _EpisodeStream(sampler, images), batch_size=None, num_workers=1,
        prefetch_factor=prefetch, collate_fn=_as_is, worker_init_fn=_ignore_signals,
        pin_memory=pin_memory)
    workers = iter(loader)

    def fed():
        for episode, batch, state in workers:
            sampler.set_state(state)
            yield episode, batch

    feed = fed()
    try:
        yield feed
    finally:
        feed.close()
        workers._shutdown_workers()
