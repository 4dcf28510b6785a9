"""Beside execute: `bench perf`'s throughput measurements (evaluation, training loop and step,
TRM head), written as stamped CSVs."""
