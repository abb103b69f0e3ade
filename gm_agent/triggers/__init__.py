"""Triggers: file watches, schedules and webhooks, and the ``gm serve`` daemon.

Each firing is a ``trigger.fired`` event in the trigger's stream (``trigger:NAME``),
committed with the run it starts; see :mod:`gm_agent.triggers.daemon`.
"""

from gm_agent.triggers.daemon import (
    TASK_GLOB,
    Serving,
    find_triggers,
    next_change,
    serve,
    watched_paths,
)

__all__ = ["TASK_GLOB", "Serving", "find_triggers", "next_change", "serve", "watched_paths"]
