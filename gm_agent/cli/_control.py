"""``gm approve`` and ``gm deny``: answer a run waiting for approval, from any terminal."""

from __future__ import annotations

import os

import click

from gm_agent.cli._support import run_async, workspace_of


def _show(run_id: str, name: str, verb: str, live: bool) -> None:
    then = "the run goes on" if live else f"continue it with `gm resume {run_id}`"
    click.echo(f"{verb} {name} in run {run_id}; {then}")


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.argument("call_id", required=False)
@click.option(
    "--always",
    type=click.Choice(["run", "project"]),
    is_flag=False,
    flag_value="run",
    help="Also approve what this rule asks from now on, in the run (default) or the project.",
)
@click.pass_context
def approve(ctx: click.Context, run_ref: str, call_id: str | None, always: str | None) -> None:
    """Approve the call RUN waits for (or CALL_ID)."""
    from gm_agent.kernel import answer_approval

    answered = run_async(
        lambda: answer_approval(
            workspace_of(ctx),
            run_ref,
            os.environ,
            grant=True,
            call_id=call_id,
            always=always,  # type: ignore[arg-type]
        )
    )
    _show(answered.run_id, answered.approval.name, "approved", answered.live)


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.argument("call_id", required=False)
@click.option("--reason", help="What the model is told (why not, what to do instead).")
@click.pass_context
def deny(ctx: click.Context, run_ref: str, call_id: str | None, reason: str | None) -> None:
    """Deny the call RUN waits for (or CALL_ID); the model is told, with --reason."""
    from gm_agent.kernel import answer_approval

    answered = run_async(
        lambda: answer_approval(
            workspace_of(ctx), run_ref, os.environ, grant=False, call_id=call_id, reason=reason
        )
    )
    _show(answered.run_id, answered.approval.name, "denied", answered.live)
