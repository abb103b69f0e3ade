"""Steer a run from any terminal: ``gm approve``, ``gm deny``, ``gm send``,
``gm interrupt`` and ``gm cancel``."""

from __future__ import annotations

import os
import sys

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


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.argument("text")
@click.option(
    "--preempt",
    is_flag=True,
    help="Cut in at the next safe point: stop the model's request, skip the step's "
    "remaining tool calls, and have the message answered first.",
)
@click.pass_context
def send(ctx: click.Context, run_ref: str, text: str, preempt: bool) -> None:
    """Send TEXT to RUN as a user message (delivered after its current step)."""
    from gm_agent.kernel import send_message

    sent = run_async(
        lambda: send_message(workspace_of(ctx), run_ref, os.environ, text, preempt=preempt)
    )
    then = (
        "the run takes it at its next safe point"
        if sent.live
        else f"the run is {sent.status}; it takes the message when you `gm resume {sent.run_id}`"
    )
    click.echo(f"sent to run {sent.run_id}; {then}")


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.option("--reason", help="Why (journaled with the interrupt).")
@click.pass_context
def interrupt(ctx: click.Context, run_ref: str, reason: str | None) -> None:
    """Pause RUN at its next safe point; `gm resume RUN` continues it."""
    from gm_agent.kernel import interrupt_run

    done = run_async(lambda: interrupt_run(workspace_of(ctx), run_ref, os.environ, reason=reason))
    if done.status == "paused":
        click.echo(f"run {done.run_id} paused; continue it with `gm resume {done.run_id}`")
    else:
        click.echo(f"asked run {done.run_id} to pause; it is {done.status} for now")


@click.command()
@click.argument("run_ref", metavar="RUN")
@click.option("--reason", help="Why (journaled, and the run's error).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def cancel(ctx: click.Context, run_ref: str, reason: str | None, yes: bool) -> None:
    """Cancel RUN: kill what it has in flight and finish it as cancelled."""
    from gm_agent.kernel import cancel_run

    if not yes and sys.stdin.isatty():
        click.confirm(f"cancel run {run_ref}? It cannot be resumed afterwards", abort=True)
    done = run_async(lambda: cancel_run(workspace_of(ctx), run_ref, os.environ, reason=reason))
    if done.status == "cancelled":
        click.echo(f"run {done.run_id} cancelled")
    else:
        click.echo(f"asked run {done.run_id} to cancel; it is {done.status} for now")
