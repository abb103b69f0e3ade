"""What the TUI's screens share: the app they belong to, and their help."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding
from textual.screen import Screen

from gm_agent.tui._modals import Help

if TYPE_CHECKING:
    from gm_agent.tui.app import GmApp

__all__ = ["GmScreen"]


class GmScreen(Screen[None]):
    """A screen of :class:`~gm_agent.tui.app.GmApp`; ``?`` lists its bindings,
    with ``help`` text where the footer's short label is not enough."""

    DESCRIPTIONS: ClassVar[dict[str, str]] = {}
    """Longer descriptions for the help screen, by action name."""

    @property
    def gm(self) -> GmApp:
        """The app, typed."""
        from gm_agent.tui.app import GmApp

        app = self.app  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        assert isinstance(app, GmApp)
        return app

    def action_help(self) -> None:
        """Show every binding of this screen."""
        shown = [
            (self.gm.get_key_display(b), self.DESCRIPTIONS.get(b.action, b.description))
            for b in self.BINDINGS
            if isinstance(b, Binding) and b.description
        ]
        self.gm.push_screen(Help(shown))
