"""Layer 2: option text → checked cells, run options and executor settings, and `--dry-run`'s
account of them. Imports only core and the public API, and no torch at import."""
