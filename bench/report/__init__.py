"""Beside the layers: reads results, never runs anything and never imports torch: per-cell
summaries, comparisons, tables, plots, the HTML page and `bench check`."""
