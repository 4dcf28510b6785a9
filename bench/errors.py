"""The one exception type a user can cause; the CLI prints it as one line and exits with code 2."""


class BenchError(Exception):
    """A problem in the user's input or environment, with a message that names the fix."""
