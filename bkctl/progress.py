"""Progress for a person watching a terminal: lines and an elapsed-time spinner on stderr, nothing otherwise.

CI logs and pipes stay clean and machine-readable: every function here is silent unless stderr is a TTY.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator

import click

__all__ = ["progress", "waiting"]

_FRAMES = "|/-\\"
_TICK = 0.2  # seconds between spinner frames


def _on_terminal() -> bool:
    return sys.stderr.isatty()


def progress(message: str) -> None:
    """A progress line on stderr, only for a person watching a terminal."""
    if _on_terminal():
        click.echo(message, err=True)


def _spin(message: str, started: float, done: threading.Event) -> None:
    frame = 0
    while not done.wait(_TICK):
        frame += 1
        click.echo(f"\r{_FRAMES[frame % len(_FRAMES)]} {message} {time.monotonic() - started:.0f}s", err=True, nl=False)


@contextlib.contextmanager
def waiting(message: str) -> Iterator[None]:
    """Show ``message`` with a spinner and the elapsed seconds while the block runs (terminal only).

    Used for the waits a person may wonder about: the pool's allocation queue and a worker starting.
    """
    if not _on_terminal():
        yield
        return
    click.echo(message, err=True, nl=False)
    started, done = time.monotonic(), threading.Event()
    spinner = threading.Thread(target=_spin, args=(message, started, done), daemon=True)
    spinner.start()
    outcome = "failed"
    try:
        yield
        outcome = "done"
    finally:
        done.set()
        spinner.join()
        click.echo(f"\r\033[K{message} {outcome} ({time.monotonic() - started:.1f}s)", err=True)
