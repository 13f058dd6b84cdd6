"""The progress bar long work shows: transient, on stderr (stdout stays clean for ``--json``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def working(description: str, enabled: bool = True) -> Iterator[None]:
    """A bar without a count for one long step that cannot count its work (fitting a model), shown as :func:`progress_bar` is."""
    with progress_bar(enabled) as bar:
        bar.add_task(description, total=None)
        yield
