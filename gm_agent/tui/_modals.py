"""The TUI's modal screens: a yes-or-no question, and the list of key bindings."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

__all__ = ["Confirm", "Help"]


class Confirm(ModalScreen[bool]):
    """Ask yes or no (``y`` / ``n``) before an action that cannot be taken back.

    Dismissed with ``True`` for yes, ``False`` for no (or escape).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Label(self.question, markup=False)  # it may quote journal text
            yield Label("[b]y[/b] yes   [b]n[/b] no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class Help(ModalScreen[None]):
    """Every key binding of the screen it was opened from: ``(keys, what)`` pairs."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, bindings: list[tuple[str, str]]) -> None:
        super().__init__()
        self.lines = bindings

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Label("[b]Keys[/b]")
            width = max((len(key) for key, _ in self.lines), default=1)
            for key, description in self.lines:
                yield Label(Text.assemble((f"{key:>{width}}", "bold"), f"  {description}"))
            yield Label("ctrl+p  command palette · escape closes this")

    def action_close(self) -> None:
        self.dismiss()
