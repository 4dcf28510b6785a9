"""Layer 5: evaluation over fixed test episodes (also of models trained on another dataset);
plain functions, progress is a callback."""
