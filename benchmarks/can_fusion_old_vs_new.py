"""CAN's 84×84 training step: the meta-fusion over the formed correlation map (before commit
"can: meta-fusion from the unit-norm features") against today's rank-C form, interleaved, on the
harness's own step (bench.perf.train_step.case_row). Prints the largest difference of outputs and
input gradients, then ms per step.

    .venv/bin/python benchmarks/can_fusion_old_vs_new.py
"""

import sys

import torch
import torch.nn.functional as F
from bench.methods import can as C

from bench.perf.train_step import Train84Plan, case_row, matmul_rates


def old_fusion(fusion, correlation):
    means = correlation.mean(1).unsqueeze(-1)
    kernel = fusion.expand(F.relu(fusion.norm(fusion.squeeze(means)))).squeeze(-1)
    weighted = (correlation * kernel.unsqueeze(1)).mean(-1)
    return F.softmax(weighted / C.ATTENTION_TEMPERATURE, dim=-1) + 1


def old_attended(self, support, support_labels, query, n_way):
    classes = C.prototypes(support.flatten(1), support_labels, n_way).view(
        n_way, *support.shape[1:]).flatten(2)
    queries = query.flatten(2)
    n_query, m = len(queries), queries.shape[-1]
    correlation = torch.einsum("kci,qcj->qkij", F.normalize(classes, dim=1),
                               F.normalize(queries, dim=1)).reshape(-1, m, m)
    class_attention = old_fusion(self.fusion, correlation).view(n_query, n_way, 1, m)
    query_attention = old_fusion(self.fusion, correlation.transpose(1, 2)).view(
        n_query, n_way, 1, m)
    return classes.unsqueeze(0) * class_attention, queries.unsqueeze(1) * query_attention


def differences(new) -> list[float]:
    torch.manual_seed(0)
    model = C.CrossAttentionNetwork(C.CrossAttentionNetwork.Config(), 3, image_size=84).train()
    support = torch.randn(5, 64, 21, 21, requires_grad=True)
    query = torch.randn(75, 64, 21, 21, requires_grad=True)
    outputs = []
    for attended in (old_attended, new):
        classes, queries = attended(model, support, torch.arange(5), query, 5)
        support.grad = query.grad = None
        (model.logits(classes, queries).sum() + 1e-3 * (classes.sum() + queries.sum())).backward()
        outputs.append((classes.detach(), queries.detach(), support.grad, query.grad))
    return [float((a - b).abs().max()) for a, b in zip(*outputs)]


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    new = C.CrossAttentionNetwork.attended
    print("max |old - new| (classes, queries, support grad, query grad):", differences(new))
    rates = matmul_rates(torch.device("cpu"))
    plan = Train84Plan(warmup=1, steps=3)
    for repeat in range(2):
        for shot in (1, 5):
            for name, attended in (("old", old_attended), ("new", new)):
                C.CrossAttentionNetwork.attended = attended
                row = case_row("can", shot, "fp32", plan, torch.device("cpu"), rates)
                print(f"{repeat} {name} {shot}-shot {row['ms_per_step']} ms "
                      f"{row['gflop_per_step']} GFLOP", flush=True)
    C.CrossAttentionNetwork.attended = new


if __name__ == "__main__":
    main()
