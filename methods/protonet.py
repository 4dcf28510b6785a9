"""Prototypical Networks (Snell, Swersky & Zemel, NeurIPS 2017)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.registry import METHODS
from bench.methods.base import FewShotClassifier, MethodConfig, param, prototypes, \
    squared_euclidean_logits


@METHODS.register("protonet")
class ProtoNet(FewShotClassifier):
    """Squared Euclidean distance from each query to its class means (prototypes)."""

    @dataclass(frozen=True)
    class Config(MethodConfig):
        backbone: str = param("conv4", "embedding network: conv4 | conv64f")

    def head(self, support, support_labels, query, n_way):
        protos = prototypes(support.flatten(1), support_labels, n_way)
        return squared_euclidean_logits(query.flatten(1), protos)
