"""`bench run --executor ray`: one Ray task per training, progress through a small actor."""
