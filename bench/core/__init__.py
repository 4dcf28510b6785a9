"""Layer 6: what every layer shares: the cell and its identity, run options and results rows,
episodes, stored models, precision, machine stamps, progress callbacks, running logs."""
