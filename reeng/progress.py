"""The progress bar long work shows: transient, on stderr (stdout stays clean for ``--json``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress


def progress_bar(enabled: bool = True) -> Progress:
    """A rich progress bar on stderr that disappears when done; ``enabled=False`` shows nothing."""
    from rich.console import Console
    from rich.progress import Progress

    return Progress(transient=True, disable=not enabled, console=Console(stderr=True))
