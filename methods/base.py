"""The base class every method plugin derives from.

A method is an embedding (``embed``: images → feature maps) and a head (``head``: support features,
support labels and query features of one episode → logits). ``forward`` composes them. Keeping the
two apart lets evaluation embed every test image once and run only the head per episode
(``bench.evaluate.episodic.evaluate``): with BatchNorm in eval mode the result is the same.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import ClassVar

import torch
import torch.nn.functional as F
from bench.methods.backbones import BACKBONE_HELP, BACKBONES, backbone_channels, make_backbone
from torch import nn

from bench.errors import BenchError


def param(default, help: str, choices: tuple | None = None, positive: bool = False):
    """A config field with its help text (shown by `bench list`).

    ``choices``: the only valid values; ``positive``: a number that must be finite and > 0.
    ``MethodConfig.validate`` checks both for every field, before anything is trained.
    """
    metadata = {"help": help}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if positive:
        metadata["positive"] = True
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class MethodConfig:
    backbone: str = param("conv4", BACKBONE_HELP)

    def validate(self) -> None:
        if self.backbone not in BACKBONES:
            raise BenchError(f"unknown backbone {self.backbone!r}; valid backbones: "
                             f"{', '.join(BACKBONES)}")
        # A method's backbone help string lists the backbones it takes (BACKBONE_HELP: all);
        # a plugin whose help names only some (a head sized for 64 channels, say) refuses the
        # others here, before anything is built.
        listed = [name for name in BACKBONES
                  if re.search(rf"\b{name}\b", type(self).__dataclass_fields__["backbone"]
                               .metadata.get("help", ""))]
        if listed and self.backbone not in listed:
            raise BenchError(f"backbone {self.backbone!r} is not one this method takes; valid "
                             f"backbones: {', '.join(listed)}")
        for spec in fields(self):
            check_param(spec, getattr(self, spec.name))


def check_param(spec, value) -> None:
    """The ``choices``/``positive`` rules of one field's ``param`` metadata, as BenchErrors."""
    choices = spec.metadata.get("choices")
    if choices is not None and value not in choices:
        raise BenchError(f"parameter {spec.name}={value!r} is not valid; valid values: "
                         f"{', '.join(map(str, choices))}")
    if spec.metadata.get("positive"):
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if number is None or not math.isfinite(number) or number <= 0:
            raise BenchError(f"parameter {spec.name}={value!r} must be a positive finite number, "
                             f"e.g. {spec.name}={spec.default}")


@dataclass
class TrainingEpisode:
    """What a method's training loss may use, for one training episode: the embedded support and
    query images, their episode labels, and (where the runner knows them) the base-class labels of
    the support rows then the query rows, for auxiliary losses over all base classes (CAN)."""

    support: torch.Tensor
    support_labels: torch.Tensor
    query: torch.Tensor
    query_labels: torch.Tensor
    n_way: int
    base_labels: torch.Tensor | None = None


class FewShotClassifier(nn.Module):
    """Backbone + metric head; subclasses implement ``head`` and may override ``loss`` or
    ``training_loss`` (their own training objective; default: cross-entropy of the head's logits).
    """

    Config: ClassVar[type] = MethodConfig
    # A head that needs raw images (transductive or image-level) sets this to True: evaluation then
    # falls back to embedding every episode on its own.
    needs_images: ClassVar[bool] = False
    # A head whose logits for one query depend on the episode's other queries (it sees them all,
    # in training as in evaluation) says so: `bench list` labels it "transductive".
    transductive: ClassVar[bool] = False
    # False: the method has nothing to learn from training episodes (Baseline, Baseline++: a
    # pre-trained backbone and a classifier fitted on each test episode's support set); its cells
    # are planned with 0 training episodes, and `requires_pretraining` makes --pretrain-epochs
    # mandatory for it.
    episodic: ClassVar[bool] = True
    requires_pretraining: ClassVar[bool] = False
    # The classifier over the base classes that supervised pre-training (bench.train.pretrain)
    # trains beside the backbone: "linear" (Baseline) or "cosine" (Baseline++'s scaled cosine,
    # bench.methods._finetune.CosineClassifier).
    pretrain_classifier: ClassVar[str] = "linear"
    # What the constructor needs to know of the data besides the channels, passed by
    # ``bench.core.model.build_model`` as keyword arguments: "n_base_classes" (the training
    # split's class count, for a classifier over all base classes: CAN) and "image_size" (the side
    # of the images, for layers sized by the feature map's positions: CAN's meta-fusion layer).
    build_needs: ClassVar[tuple[str, ...]] = ()
    # True: the head fits parameters on each episode's support set at test time, from a generator
    # seeded with ``episode_seed`` (set by ``bench.evaluate.episodic.evaluate`` per episode).
    fits_at_test_time: ClassVar[bool] = False
    registry_name: ClassVar[str]

    def __init__(self, config: MethodConfig, in_channels: int):
        super().__init__()
        self.config = config
        self.feature_channels = backbone_channels(config.backbone)
        self.episode_seed = 0
        # Channels-last (NHWC) convolutions: 1.5× faster Conv-4 training on a 2-core Xeon
        # (oneDNN); the feature maps come out channels-last, which every head reads by shape.
        self.backbone = make_backbone(config.backbone, in_channels).to(
            memory_format=torch.channels_last)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Feature maps [B, C, H, W] of images [B, channels, size, size]."""
        return self.backbone(images.contiguous(memory_format=torch.channels_last))

    def head(self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor,
             n_way: int) -> torch.Tensor:
        """Logits [n_query, n_way] from support/query feature maps of one episode."""
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, episode: TrainingEpisode) -> torch.Tensor:
        """The training loss of the head's logits (default: cross-entropy, as ProtoNet)."""
        return F.cross_entropy(logits, episode.query_labels)

    def training_loss(self, episode: TrainingEpisode) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits [n_query, n_way]) of one training episode; the logits give the training
        accuracy. Methods with auxiliary terms (FEAT, CAN) override this."""
        logits = full_precision(self.head(episode.support, episode.support_labels,
                                          episode.query, episode.n_way))
        return self.loss(logits, episode), logits

    def forward(self, support_images: torch.Tensor, support_labels: torch.Tensor,
                query_images: torch.Tensor, n_way: int | None = None) -> torch.Tensor:
        n_way = n_way if n_way is not None else int(support_labels.max()) + 1
        n_support = len(support_images)
        features = self.embed(torch.cat([support_images, query_images]))
        return self.head(features[:n_support], support_labels, features[n_support:], n_way)


def full_precision(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in float32 where it is in a lower precision (bf16 autocast), else as it is:
    losses and solves run in float32 at least, and float64 stays float64 (gradient checks)."""
    return tensor if tensor.dtype in (torch.float32, torch.float64) else tensor.float()


def global_pool(features: torch.Tensor) -> torch.Tensor:
    """Feature maps [N, C, H, W] averaged over positions: [N, C]."""
    return features.mean((2, 3))


def prototypes(features: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Class means [n_way, D] of flattened features [N, D]."""
    sums = torch.zeros(n_way, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=n_way).clamp(min=1).to(features.dtype)
    return sums / counts[:, None]


def squared_euclidean_logits(query: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """−‖q − p‖² for every (query, prototype) pair: [n_query, n_way]."""
    return -torch.cdist(query, protos).pow(2)


def cosine_logits(query: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """cos(q, p) for every (query, prototype) pair: [n_query, n_way]."""
    return F.normalize(query, dim=-1) @ F.normalize(protos, dim=-1).T


class Temperature(nn.Module):
    """A logit scale, learned (stored as its log, so it stays positive) or fixed."""

    def __init__(self, initial: float, learned: bool):
        super().__init__()
        log_value = torch.tensor(float(initial)).log()
        if learned:
            self.log_value = nn.Parameter(log_value)
        else:
            self.register_buffer("log_value", log_value)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits * self.log_value.exp()
