"""What several test files share: stderr without the progress lines `bench` prints there."""

PROGRESS = ("train ", "test  ", "pretrain ", "preparing ", "cache of ", "wrote ")


def without_progress(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are not progress (a one-line error is then one line)."""
    return [line for line in stderr.strip().splitlines() if not line.startswith(PROGRESS)]
