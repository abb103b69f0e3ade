"""``gm serve``: host the workspace's triggers (webhooks, file watches, schedules)."""

from __future__ import annotations

import logging
import os

import click

from gm_agent.cli._support import run_async, workspace_of


@click.command()
@click.option(
    "--port", type=click.IntRange(0, 65535), help="Webhook port (default: gm.toml's, 8787)."
)
@click.pass_context
def serve(ctx: click.Context, port: int | None) -> None:
    """Host the triggers of gm.toml and tasks/*.md until Ctrl-C.

    Webhooks, file watches and schedules each start runs of their task, unattended
    (a call that needs approval stops its run as waiting). Runs whose process died
    are taken over and resumed.
    """
    from gm_agent.triggers import Serving
    from gm_agent.triggers import serve as serve_triggers

    logging.basicConfig(level=logging.INFO, format="gm serve: %(message)s")

    def ready(serving: Serving) -> None:
        if serving.url:
            click.echo(f"gm serve: webhooks at {serving.url}", err=True)
        for trigger in serving.triggers:
            where = (
                getattr(trigger, "path", None)
                or getattr(trigger, "cron", None)
                or getattr(trigger, "every", None)
                or ", ".join(getattr(trigger, "paths", ()))
            )
            click.echo(
                f"gm serve: {trigger.on} trigger {trigger.name!r} ({where}) runs {trigger.task or f'scheme {trigger.scheme}'}",
                err=True,
            )
        if not serving.triggers:
            click.echo(
                "gm serve: no triggers (add [[triggers]] to gm.toml); resuming orphaned runs only",
                err=True,
            )
        click.echo("gm serve: ready; Ctrl-C to stop", err=True)

    run_async(lambda: serve_triggers(workspace_of(ctx), os.environ, on_ready=ready, port=port))
