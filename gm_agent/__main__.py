"""``python -m gm_agent`` is ``gm``."""

from gm_agent.cli import main

main()
