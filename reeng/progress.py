"""The progress bar long work shows: transient, on stderr (stdout stays clean for ``--json``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress


def progress_bar(enabled: bool = True) -> Progress:
    """A rich progress bar on stderr that disappears when done; ``enabled=False`` shows nothing.

    Nor does it show where stderr is neither a terminal nor a notebook (a pipe, a log file, a
    test's capture): there rich draws no bar and would leave only an empty line behind, above a
    command's ``error:`` line.
    """
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    shown = enabled and (console.is_terminal or console.is_jupyter)
    return Progress(transient=True, disable=not shown, console=console)
