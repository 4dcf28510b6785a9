"""fewshot-bench."""
