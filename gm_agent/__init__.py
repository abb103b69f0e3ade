"""gm_agent: a local-first, durable runtime for autonomous agents.

The public surface is small: run a task with :func:`gm_agent.kernel.run_task`,
open a journal with :class:`gm_agent.journal.Journal`, and read events with
:mod:`gm_agent.events`. Everything else is reached through the ``gm`` command.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
