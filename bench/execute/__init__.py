"""Layer 3: runs planned cells: jobs (one per training), the driver that writes each finished
cell's results, the local executor with live progress, and `execute/ray/` (the only place that
imports Ray)."""
