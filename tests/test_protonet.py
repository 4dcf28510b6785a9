"""ProtoNet's logit scale: Snell's unscaled distances by default, FEAT's ÷ temperature optional."""

import pytest
import torch

from bench.core.config import Cell, MethodSpec, identity_params, parse_method
from bench.errors import BenchError


def test_temperature_divides_the_squared_distances():
    support, query = torch.randn(4, 8), torch.randn(6, 8)
    labels = torch.tensor([0, 0, 1, 1])
    plain = parse_method("protonet").config()
    scaled = parse_method("protonet(temperature=64)").config()
    from bench.methods.protonet import ProtoNet

    unscaled = ProtoNet(plain, 1).head(support, labels, query, 2)
    protos = torch.stack([support[:2].mean(0), support[2:].mean(0)])
    torch.testing.assert_close(unscaled, -torch.cdist(query, protos).pow(2))
    torch.testing.assert_close(ProtoNet(scaled, 1).head(support, labels, query, 2), unscaled / 64)


def test_default_temperature_leaves_cell_ids_as_before():
    """Results recorded before the option existed keep their cell and training ids."""
    assert "temperature" not in identity_params(parse_method("protonet").config())
    assert identity_params(parse_method("protonet(temperature=64)").config())["temperature"] == 64
    default = Cell(MethodSpec("protonet"), "glyphs", (), 5, 1, 15, 600, 0)
    assert default.training()["method_params"] == {"backbone": "conv4"}
    scaled = Cell(parse_method("protonet(temperature=64)"), "glyphs", (), 5, 1, 15, 600, 0)
    assert scaled.training_id != default.training_id


def test_non_positive_temperature_is_a_one_line_error():
    with pytest.raises(BenchError, match="temperature=0.0 of protonet must be positive"):
        parse_method("protonet(temperature=0)").config()
