"""Matching Networks: Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, "Matching Networks for
One Shot Learning", NeurIPS 2016.

The query's label distribution is an attention-weighted sum of the support labels,

    P(y = c | x̂, S) = Σ_{i: y_i = c} a(x̂, x_i),   a(x̂, x_i) = softmax_i cos(f(x̂), g(x_i)),

trained by −log P(y | x̂, S). The head returns log P(y = c | x̂, S) itself (a log-sum-exp of the
cosines of the class's support images minus the one over all of them): these are normalised log
probabilities, so the harness's cross-entropy on them is exactly the paper's loss.

``cosine=support`` normalises only the support embeddings, as the original code did (noted in
meta-dataset's ``MatchingNetworkLearner``): the query's norm then acts as a learned temperature.
Default ``exact``, the paper's formula.

``fce`` (off by default): the full-context embeddings of the paper's appendix. g is a
bidirectional LSTM over the support set, g(x_i) = h→_i + h←_i + g'(x_i); f runs ``fce_steps``
(K) processing steps of an attention LSTM, ĥ_k, c_k = LSTM(f'(x̂), [h_{k-1}, r_{k-1}], c_{k-1}),
h_k = ĥ_k + f'(x̂), r_{k-1} = Σ_i softmax_i(h_{k-1}·g(x_i)) g(x_i), f(x̂, S) = h_K (h_0 = f'(x̂),
c_0 = 0; the recurrent input is the concatenation [h, r], the cell state d wide). Off by default
because the Omniglot figures this harness compares with (98.1 / 98.9 / 93.8 / 98.5) are the
paper's runs without FCE (it reports FCE on miniImageNet), and because g depends on the order of
the support set.

Default backbone Conv-4, the paper's: a 64-d embedding at 28×28 (1×1 map), 1,600-d at 84×84
(64×5×5, flattened; FCE's LSTMs are then 1,600 wide: ``fce_width=1600``, since the model is
built before it sees an image).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from bench.methods.backbones import BACKBONE_HELP
from bench.methods.base import FewShotClassifier, MethodConfig, param
from torch import nn

from bench.errors import BenchError
from bench.registry import METHODS


@METHODS.register("matchingnet")
class MatchingNetwork(FewShotClassifier):
    """Softmax attention over cosines to every support image; log of the summed class attention."""

    @dataclass(frozen=True)
    class Config(MethodConfig):
        backbone: str = param("conv4", BACKBONE_HELP)
        cosine: str = param("exact", "exact (the paper) | support (only support normalised)",
                            choices=("exact", "support"))
        fce: bool = param(False, "full-context embeddings (bidirectional LSTM g, attention LSTM f)")
        fce_steps: int = param(3, "processing steps K of FCE's attention LSTM", positive=True)
        fce_width: int = param(64, "embedding width FCE's LSTMs take (64: Conv-4 at 28×28; "
                                   "1600: Conv-4 at 84×84)", positive=True)

    def __init__(self, config: Config, in_channels: int):
        super().__init__(config, in_channels)
        self.support_context = self.query_context = None
        if config.fce:
            self.support_context = SupportContext(config.fce_width)
            self.query_context = QueryContext(config.fce_width, config.fce_steps)

    def head(self, support, support_labels, query, n_way):
        support_embedded, query_embedded = support.flatten(1), query.flatten(1)
        if self.support_context is not None:
            width = support_embedded.shape[1]
            if width != self.config.fce_width:
                raise BenchError(f"matchingnet fce: the embeddings are {width} wide here but "
                                 f"fce_width={self.config.fce_width}; set fce_width={width}")
            support_embedded = self.support_context(support_embedded)
            query_embedded = self.query_context(query_embedded, support_embedded)
        if self.config.cosine == "exact":
            query_embedded = F.normalize(query_embedded, dim=-1)
        similarities = query_embedded @ F.normalize(support_embedded, dim=-1).T  # [n_query, N]
        return log_class_attention(similarities, support_labels, n_way)


def log_class_attention(similarities: torch.Tensor, labels: torch.Tensor,
                        n_way: int) -> torch.Tensor:
    """log Σ_{i: y_i = c} softmax_i(similarities) for every class c: [n_query, n_way]."""
    members = labels[None, :] == torch.arange(n_way, device=labels.device)[:, None]  # [n_way, N]
    masked = similarities[:, None, :].masked_fill(~members, float("-inf"))
    return masked.logsumexp(-1) - similarities.logsumexp(-1, keepdim=True)


class SupportContext(nn.Module):
    """g(x_i) = h→_i + h←_i + g'(x_i): a bidirectional LSTM over the support set, in its order."""

    def __init__(self, width: int):
        super().__init__()
        self.lstm = nn.LSTM(width, width, bidirectional=True, batch_first=True)

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        output, _ = self.lstm(embedded.unsqueeze(0))  # [1, N, 2·width]
        forward, backward = output[0].chunk(2, dim=-1)
        return forward + backward + embedded


class QueryContext(nn.Module):
    """f(x̂, S): K steps of an LSTM whose recurrent input is [h_{k-1}, r_{k-1}] (paper, appendix)."""

    def __init__(self, width: int, steps: int):
        super().__init__()
        self.steps = steps
        self.gates = nn.Linear(3 * width, 4 * width)  # input f'(x̂) and recurrent [h, r]

    def forward(self, embedded: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        hidden, cell = embedded, torch.zeros_like(embedded)
        for _ in range(self.steps):
            readout = (hidden @ support.T).softmax(-1) @ support  # r_{k-1}
            gates = self.gates(torch.cat([embedded, hidden, readout], dim=-1))
            input_gate, forget_gate, candidate, output_gate = gates.chunk(4, dim=-1)
            cell = forget_gate.sigmoid() * cell + input_gate.sigmoid() * candidate.tanh()
            hidden = output_gate.sigmoid() * cell.tanh() + embedded  # h_k = ĥ_k + f'(x̂)
        return hidden
