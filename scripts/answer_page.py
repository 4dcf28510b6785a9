"""Writes the answer page from the committed results: docs/answer.md (TRM against every method)
and the README's "answer so far" block (TRM against protonet and cosine), both by
`bench report --answer`. `--check` writes nothing and exits 1 where either is not current.

    .venv/bin/python scripts/answer_page.py          # regenerate both
    .venv/bin/python scripts/answer_page.py --check  # CI: are they current?
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The evidence sets, best first: trained at the test shot under the budget rule (miniImageNet,
# CUB, and miniImageNet's models tested on CUB; then mini-fair's recipe trained in fp32, the
# precision study, whose cells answer where mini-fair has none yet), then the single-run CPU sets (their 5-shot
# cells test 1-shot-trained models: a shot-transfer study), the single-run cross-domain set,
# and Omniglot over six training runs.
# A fair-answer set joins the page with its first committed cell (its results.csv).
FOLDERS = ["results/reference/mini-fair", "results/reference/cub-fair",
           "results/reference/mini-to-cub-fair", "results/reference/mini-fair-fp32",
           "results/reference/mini-imagenet-cpu",
           "results/reference/cub-cpu", "results/reference/mini-to-cub-cpu",
           "results/reference/omniglot-zoo-seeds"]
BEGIN, END = "<!-- BEGIN answer (generated) -->", "<!-- END answer (generated) -->"
INTRO = """# The answer so far: TRM against the other methods

Every row below is computed by `bench report --answer` from committed results; each section is
one evidence set (one protocol, its training runs, its test episodes). Read "runs" first: with
one training run a difference says nothing about how much another training run would move it
(the Omniglot sets over six runs measure that: [reference-results.md](reference-results.md)), so
only the rows with ≥ 2 runs support "ahead" or "behind". "trained at … (shot transfer)" marks
5-shot cells of models trained at 1-shot: a study of how methods transfer across shots, not the
5-shot answer, which needs models trained at 5-shot (the fair-answer sections, as they fill in:
`mini-fair`, `cub-fair`, `mini-to-cub-fair`, which tests mini-fair's models on CUB, and
`mini-fair-fp32`, mini-fair's recipe trained in fp32 instead of bf16). "What
else differs" names every setting besides the method that differs between the two cells: TRM
and cosine share the Conv-64F backbone and its pre-training, so their difference is TRM's
attention alone; ProtoNet runs on Conv-4 with its own pre-training and a fixed temperature, so
TRM − ProtoNet is not the attention alone.

"""


def bench_answer(only: str | None = None) -> str:
    folders = [folder for folder in FOLDERS if (ROOT / folder / "results.csv").is_file()]
    command = [str(ROOT / ".venv" / "bin" / "bench"), "report", *folders, "--answer", "trm"]
    if only:
        command += ["--answer-only", only]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"bench report --answer failed:\n{done.stderr}")
    return done.stdout


def readme_with(block: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + block + text[end:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args()
    page = INTRO + bench_answer()
    brief = bench_answer("protonet,cosine") + ("\nAll methods, and how to read the table: "
                                               "[docs/answer.md](docs/answer.md).\n")
    targets = {ROOT / "docs" / "answer.md": page, ROOT / "README.md": readme_with(brief)}
    stale = [str(path.relative_to(ROOT)) for path, text in targets.items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    if args.check:
        if stale:
            sys.exit(f"not current: {', '.join(stale)}; run python scripts/answer_page.py")
        print("answer page current")
        return
    for path, text in targets.items():
        path.write_text(text, encoding="utf-8")
    print(f"wrote {', '.join(stale) or 'nothing (already current)'}")


if __name__ == "__main__":
    main()
