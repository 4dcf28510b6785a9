"""Prototypical Networks (Snell, Swersky & Zemel, NeurIPS 2017).

Logits are negative squared Euclidean distances to the class means, as in the paper
(``temperature=1``). With Conv-4 at 84×84 those distances are in the thousands, so the softmax
saturates from the first episode and learning is slow; FEAT (Ye et al. 2020) divides them by a
temperature of 64. ``temperature`` is that divisor (a fixed number, not learned).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bench.methods.backbones import BACKBONE_HELP
from bench.methods.base import (
    FewShotClassifier,
    MethodConfig,
    param,
    prototypes,
    squared_euclidean_logits,
)

from bench.errors import BenchError
from bench.registry import METHODS


@METHODS.register("protonet")
class ProtoNet(FewShotClassifier):
    """Squared Euclidean distance from each query to its class means (prototypes)."""

    @dataclass(frozen=True)
    class Config(MethodConfig):
        OMITTED_AT_DEFAULT: ClassVar[tuple[str, ...]] = ("temperature",)

        backbone: str = param("conv4", BACKBONE_HELP)
        temperature: float = param(1.0, "logits = −‖q − p‖² / temperature (1: Snell et al.; "
                                        "FEAT uses 64)")

        def validate(self) -> None:
            super().validate()
            if not self.temperature > 0:
                raise BenchError(f"temperature={self.temperature} of protonet must be positive")

    def head(self, support, support_labels, query, n_way):
        protos = prototypes(support.flatten(1), support_labels, n_way)
        logits = squared_euclidean_logits(query.flatten(1), protos)
        return logits if self.config.temperature == 1 else logits / self.config.temperature
