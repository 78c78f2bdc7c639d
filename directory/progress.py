"""Progress of long directory operations on stderr, without dependencies.

Directory functions report through the Progress protocol and never write themselves; the CLI
chooses TerminalProgress. On a terminal the bar redraws in place; otherwise (a log, CI) a plain
line appears every 10 %.
"""

from __future__ import annotations

import sys
from typing import Protocol, TextIO


class Progress(Protocol):
    def start(self, phase: str, total: int) -> None: ...

    def advance(self, count: int = 1) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    def start(self, phase: str, total: int) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass


class TerminalProgress:
    """Shows phases with at least `min_total` steps; small files finish before a bar would help."""

    def __init__(
        self, *, stream: TextIO | None = None, min_total: int = 1000, width: int = 30
    ) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._min_total = min_total
        self._width = width
        self._phase = ""
        self._total = 0
        self._done = 0
        self._shown = -1
        self._active = False

    def start(self, phase: str, total: int) -> None:
        self.finish()
        self._phase, self._total, self._done, self._shown = phase, total, 0, -1
        self._active = total >= self._min_total
        self._draw()

    def advance(self, count: int = 1) -> None:
        if self._active:
            self._done = min(self._total, self._done + count)
            self._draw()

    def finish(self) -> None:
        if self._active:
            self._done = self._total
            self._draw()
            if self._tty:
                self._stream.write("\n")
            self._stream.flush()
        self._active = False

    def _draw(self) -> None:
        if not self._active:
            return
        percent = self._done * 100 // max(self._total, 1)
        # Redraw only when the figure changes: thousands of rows must not mean thousands of writes.
        step = percent if self._tty else percent // 10 * 10
        if step == self._shown:
            return
        self._shown = step
        if self._tty:
            filled = self._width * self._done // max(self._total, 1)
            bar = "#" * filled + "-" * (self._width - filled)
            self._stream.write(
                f"\r{self._phase:<10} [{bar}] {self._done}/{self._total} {percent:3d}%"
            )
        else:
            self._stream.write(f"{self._phase}: {step}% ({self._done}/{self._total})\n")
        self._stream.flush()
