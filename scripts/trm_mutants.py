"""Runs tests/test_trm.py against near-miss versions of the TRM head; each must fail it.

Each mutant is a one-line edit of methods/trm.py (or methods/_attention.py), applied in place and
undone afterwards (also on Ctrl-C). Prints one line per mutant and exits 1 if any survives.

    .venv/bin/python scripts/trm_mutants.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRM, ATTENTION = ROOT / "methods" / "trm.py", ROOT / "methods" / "_attention.py"

MUTANTS = [
    ("W_q and W_k swapped", TRM, [
        ("projected_keys = self.w_k(keys)", "projected_keys = self.w_q(keys)"),
        ("q = (self.w_q(query_positions)", "q = (self.w_k(query_positions)")]),
    ("W_o dropped", TRM, [("output_values = self.w_o(self.w_v(keys))",
                           "output_values = self.w_v(keys)")]),
    ("W_k used for the values", TRM, [("output_values = self.w_o(self.w_v(keys))",
                                       "output_values = self.w_o(self.w_k(keys))")]),
    ("W_o applied before W_v", TRM, [("output_values = self.w_o(self.w_v(keys))",
                                      "output_values = self.w_v(self.w_o(keys))")]),
    ("1/sqrt(d) instead of 1/sqrt(C)", TRM, [
        ('width = self.channels if self.config.scale == "channels" else self.config.attn_dim',
         "width = self.config.attn_dim")]),
    ("cosine against the projected query", TRM, [
        ("aligned = self.aligned_support(query_positions, projected_keys, output_values)",
         "aligned = self.aligned_support(query_positions, projected_keys, output_values)\n"
         "        query_positions = self.w_o(self.w_q(query_positions))")]),
    ("dual computed as the row softmax", ATTENTION, [
        ('ATTENTION = {"row": row_attention, "dual": dual_attention,',
         'ATTENTION = {"row": row_attention, "dual": row_attention,')]),
    ("column normalisers dropped (α = row softmax squared)", ATTENTION, [
        ("return u.unsqueeze(-1), sums.reciprocal().view(*u.shape[:2], 1, -1)",
         "return u.unsqueeze(-1), torch.ones_like(sums).view(*u.shape[:2], 1, -1)")]),
    ("fallback column softmax over every query of the block", ATTENTION, [
        ("return scores.unflatten(1, (-1, hw)).softmax(-2, dtype=dtype).flatten(1, 2)",
         "return scores.softmax(-2, dtype=dtype)")]),
    ("mean_map keys taken from the first shot", TRM, [
        ('"mean_map": maps.mean(1)', '"mean_map": maps[:, 0]')]),
    ("per_shot cosines summed instead of averaged", TRM, [
        ("cosines = cosines.view(len(query), n_way, -1).mean(-1)",
         "cosines = cosines.view(len(query), n_way, -1).sum(-1)")]),
]


def run_tests() -> bool:
    done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "test_trm.py")], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    return done.returncode == 0


def main() -> int:
    if not run_tests():
        print("tests/test_trm.py fails on the unmutated code; fix that first")
        return 1
    survivors = 0
    for name, path, edits in MUTANTS:
        original = path.read_text()
        mutated = original
        for old, new in edits:
            if old not in mutated:
                raise SystemExit(f"mutant {name!r}: {old!r} is no longer in {path.name}")
            mutated = mutated.replace(old, new)
        try:
            path.write_text(mutated)
            passed = run_tests()
        finally:
            path.write_text(original)
        survivors += passed
        print(f"{'SURVIVED' if passed else 'killed  '}  {name}", flush=True)
    print(f"{len(MUTANTS) - survivors} of {len(MUTANTS)} mutants fail tests/test_trm.py")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
