"""Layer 4: training as plain functions over a model and episodes (episodic training, its
checkpoints, supervised pre-training, one cell's training); progress is a callback."""
