"""Named crash points, for testing recovery with real process deaths.

Set ``GM_CRASH_AT=POINT`` (or ``POINT:N`` to crash the N-th time the point is
reached, counting from 1 in this process) and the process kills itself with
SIGKILL there: no cleanup, no flush, exactly as if the machine had taken it
away. Points:

========================  ==================================================
``job.after_intent``      ``job.intent`` is committed, the effect has not started
``job.after_effect``      the effect finished, ``job.result`` is not committed
``patch.after_write``     a patch's files are written, ``patch.applied`` is not
``tool.before_returned``  a tool call's effect is recorded, ``tool.returned`` is not
``checkpoint.after_save``  a checkpoint is committed, the loop has not gone on
========================  ==================================================

Unset (the default), :func:`crash_point` costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

__all__ = ["CRASH_POINTS", "crash_point"]

CRASH_POINTS = frozenset(
    {
        "job.after_intent",
        "job.after_effect",
        "patch.after_write",
        "tool.before_returned",
        "checkpoint.after_save",
    }
)

_reached: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """Die with SIGKILL here if ``GM_CRASH_AT`` names this point (and count)."""
    armed = os.environ.get("GM_CRASH_AT")
    if not armed:
        return
    point, _, count = armed.partition(":")
    assert name in CRASH_POINTS, name
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
