"""Cosine-prototype baseline: TRM without its attention module (the ablation a reader wants).

Cosine similarity to class means with a learned temperature, as the cosine classifiers of
Chen et al. 2019 (Baseline++) and Gidaris & Komodakis 2018; default Conv-64F like TRM.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.methods.backbones import BACKBONE_HELP
from bench.methods.base import (
    FewShotClassifier,
    MethodConfig,
    Temperature,
    cosine_logits,
    param,
    prototypes,
)

from bench.registry import METHODS


@METHODS.register("cosine")
class CosinePrototypes(FewShotClassifier):
    """Logit = τ · cos(query features, class-mean features), τ learned (initial 10)."""

    @dataclass(frozen=True)
    class Config(MethodConfig):
        backbone: str = param("conv64f", BACKBONE_HELP)
        temperature: str = param("learned", "logit scale τ: learned | fixed",
                                 choices=("learned", "fixed"))
        tau: float = param(10.0, "initial (or fixed) value of τ (> 0)", positive=True)

    def __init__(self, config, in_channels):
        super().__init__(config, in_channels)
        self.temperature = Temperature(config.tau, learned=config.temperature == "learned")

    def head(self, support, support_labels, query, n_way):
        protos = prototypes(support.flatten(1), support_labels, n_way)
        return self.temperature(cosine_logits(query.flatten(1), protos))
