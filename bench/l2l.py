"""Imports learn2learn quietly.

learn2learn imports gym, whose ``gym_notices`` package prints an "unmaintained" notice to stderr
on every import; users should not see it on every command, so the import is done here once with
stderr captured (anything else it prints is still passed on).
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from functools import lru_cache


@lru_cache(maxsize=1)
def learn2learn():
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import learn2learn as module
    text = captured.getvalue()
    try:
        import gym
        import gym_notices.notices

        text = text.replace(gym_notices.notices.notices.get(gym.__version__) or "\0", "")
    except ImportError:
        pass
    if text.strip():
        print(text.strip(), file=sys.stderr)
    return module
