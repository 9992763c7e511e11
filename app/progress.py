"""Stage progress of long commands (``retrain``, ``demo``): a bar on a terminal, lines elsewhere, JSON lines.

On a terminal (stderr is a TTY) each stage gets one redrawn line: a bar, the counts
done of the total, the time spent and an ETA — from the counts when the stage has
any, else from how long the stage took in the previous run. When stderr is not a
terminal (cron, the workbench's job log) it gets one plain line per stage start and
end instead. With ``--json`` each finished stage is also one JSON line on stdout
(``{"event": "stage", "stage", "seconds", "counts"}``), before the command's
summary, which stays the last line.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

BAR_WIDTH = 24
REDRAW_SECONDS = 0.25


def previous_stage_seconds(registry_root: Path) -> dict[str, float]:
    """Stage durations of the newest run report that trained (``<registry>/runs/*.json``), for ETAs."""
    try:
        reports = sorted((registry_root / "runs").glob("*.json"), reverse=True)
    except OSError:
        return {}
    for path in reports[:20]:
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        stages = report.get("stages") if isinstance(report, dict) else None
        if isinstance(stages, dict) and "train" in stages:
            return {k: float(v) for k, v in stages.items() if isinstance(v, (int, float))}
    return {}


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _counts(counts: dict) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k} {v}"
                     for k, v in counts.items())


class StageProgress:
    """A ``waflens.pipeline.retrain.StageReporter`` that draws on stderr and, with ``json_out``, writes JSON lines."""

    def __init__(self, prefix: str, *, stream: TextIO | None = None, json_out: TextIO | None = None,
                 tty: bool | None = None, expected: dict[str, float] | None = None):
        self.prefix = prefix
        self.stream = stream if stream is not None else sys.stderr
        self.json_out = json_out
        self.tty = _isatty(self.stream) if tty is None else tty
        self.expected = expected or {}
        self._lock = threading.Lock()
        self._stage: str | None = None
        self._total: int | None = None
        self._unit = ""
        self._done = 0
        self._note = ""
        self._began = 0.0
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    # --- the StageReporter protocol ---
    def begin(self, stage: str, total: int | None = None, unit: str = "") -> None:
        with self._lock:
            self._stage, self._total, self._unit, self._done, self._note = stage, total, unit, 0, ""
            self._began = time.perf_counter()
            if self.tty:
                self._draw()
            else:
                self._write(f"{self.prefix}: {stage}…\n")
        if self.tty and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="stage-progress", daemon=True)
            self._ticker.start()

    def advance(self, done: int, note: str = "") -> None:
        with self._lock:
            self._done, self._note = done, note or self._note
            if self.tty:
                self._draw()

    def end(self, stage: str, seconds: float, counts: dict) -> None:
        with self._lock:
            self._stage = None
            detail = f" ({_counts(counts)})" if counts else ""
            if self.tty:
                self._write(f"\r\x1b[K{self.prefix}: {stage:<10} done in {seconds:.1f} s{detail}\n")
            else:
                self._write(f"{self.prefix}: {stage} done in {seconds:.1f} s{detail}\n")
            if self.json_out is not None:
                self.json_out.write(json.dumps({"event": "stage", "stage": stage, "seconds": round(seconds, 3),
                                                "counts": counts}, default=str) + "\n")
                self.json_out.flush()

    def message(self, text: str) -> None:
        with self._lock:
            self._write(("\r\x1b[K" if self.tty else "") + f"{self.prefix}: {text}\n")

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1.0)
            self._ticker = None

    def __enter__(self) -> "StageProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- drawing ---
    def line(self, now: float | None = None) -> str:
        """The running stage's progress line (without control characters)."""
        elapsed = (time.perf_counter() if now is None else now) - self._began
        total, done = self._total, self._done
        expected = self.expected.get(self._stage or "")
        if total:
            fraction = min(done / total, 1.0)
            count = f" {done:,}/{total:,} {self._unit}".rstrip()
            eta = elapsed / done * (total - done) if done else (expected - elapsed if expected else None)
        elif expected:
            fraction, count, eta = min(elapsed / expected, 0.99), "", expected - elapsed
        else:
            fraction, count, eta = None, "", None
        if fraction is None:  # nothing to measure by: a block that moves, so the screen shows it is alive
            position = int(elapsed / REDRAW_SECONDS) % (BAR_WIDTH - 3)
            bar = " " * position + "###" + " " * (BAR_WIDTH - 3 - position)
        else:
            filled = int(round(fraction * BAR_WIDTH))
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        eta_text = f"  ETA {_duration(max(eta, 0.0))}" if eta is not None else ""
        note = f"  {self._note}" if self._note else ""
        return f"{self.prefix}: {self._stage:<10} [{bar}]{count}  {_duration(elapsed)}{eta_text}{note}"

    def _draw(self) -> None:
        width = shutil.get_terminal_size((100, 20)).columns
        self._write("\r\x1b[K" + self.line()[: max(width - 1, 20)])

    def _tick(self) -> None:
        while not self._stop.wait(REDRAW_SECONDS):
            with self._lock:
                if self._stage is not None:
                    self._draw()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed terminal must not fail the run
            pass


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
