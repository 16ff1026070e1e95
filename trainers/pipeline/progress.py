"""Stage and progress reporting: to the console, and to the catalog for the operator.

The operator reads `progress/<key>.json` from the catalog store (no log scraping), so
every stage change and every finished trial is written there when a key is given.

What a person sees is one `Console` for the whole process (`use_console`): a live rich
display on a terminal, plain lines elsewhere, nothing with `--json`. Without one (library
use, `e2gan base`), stage lines are printed as `[e2gan] Stage: message`.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("e2gan")

STAGES = ("Validating", "Selecting", "Synthesizing", "Searching", "Training", "Evaluating", "Exporting", "Publishing", "Done")


class Console:
    """Receives every stage change and progress update of the running job; shows nothing."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.stage_seconds: dict[str, float] = {}
        self.current: str | None = None
        self._stage_started = self.started
        self.best_psnr: float | None = None
        self.state: dict[str, Any] = {}
        self._lock = threading.RLock()
        # Fine-tune steps: Ray Train's controller writes the last step here (train_callbacks).
        self.steps_file: Path | None = None
        self.steps_total: int | None = None
        self._poller: threading.Thread | None = None
        self._closed = threading.Event()

    def watch_steps(self, path: Path, total: int) -> None:
        """Poll `path` for fine-tune steps while the Training stage runs."""
        self.steps_file, self.steps_total = path, total
        self._poller = threading.Thread(target=self._poll_steps, name="e2gan-steps", daemon=True)
        self._poller.start()

    def _poll_steps(self) -> None:
        from trainers.pipeline.train_progress import read_step

        last = None
        while not self._closed.wait(1.0):
            if self.current != "Training" or self.steps_file is None:
                continue
            step = read_step(self.steps_file)
            if step is not None and step != last:
                last = step
                self.update({**self.state, "stepsDone": step, "stepsTotal": self.steps_total})

    def finish(self) -> None:
        self._closed.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        self.close()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def stage(self, name: str, message: str) -> None:
        with self._lock:
            now = time.perf_counter()
            if self.current is not None:
                self.stage_seconds[self.current] = self.stage_seconds.get(self.current, 0.0) + now - self._stage_started
            self.current, self._stage_started = (None if name == "Done" else name), now
            self.show_stage(name, message)

    def update(self, state: dict[str, Any]) -> None:
        with self._lock:
            self.state = state
            trial = state.get("lastTrial") or {}
            score = trial.get("psnr")
            if isinstance(score, (int, float)) and (self.best_psnr is None or score > self.best_psnr):
                self.best_psnr = float(score)
            self.show_progress(state)

    # What subclasses draw.
    def show_stage(self, name: str, message: str) -> None: ...

    def show_progress(self, state: dict[str, Any]) -> None: ...

    def print(self, line: str) -> None: ...

    def close(self) -> None: ...


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _counts(state: dict[str, Any], stage: str | None) -> tuple[int, int] | None:
    """(done, total) for the stage, from the fields the pipeline reports."""
    if stage == "Searching" and state.get("trialsTotal"):
        return int(state.get("trialsDone") or 0), int(state["trialsTotal"])
    if stage == "Training" and state.get("stepsTotal"):
        return int(state.get("stepsDone") or 0), int(state["stepsTotal"])
    return None


class PlainConsole(Console):
    """Plain lines (logs, pipes, CI): one per stage and one per finished search trial."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream
        self._trials_shown = 0
        self._quarter = 0

    def print(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def show_stage(self, name: str, message: str) -> None:
        self._quarter = 0
        self.print(f"[e2gan] {_clock(self.elapsed())} {name}{': ' + message if message else ''}")

    def show_progress(self, state: dict[str, Any]) -> None:
        counts = _counts(state, self.current)
        if counts is None:
            return
        done, total = counts
        if self.current == "Searching" and done > self._trials_shown:
            self._trials_shown = done
            best = f", best {self.best_psnr:.2f} dB" if self.best_psnr is not None else ""
            self.print(f"[e2gan] {_clock(self.elapsed())} Searching: {done}/{total} trials done{best}")
        elif self.current == "Training" and total and done * 4 // total > self._quarter and done < total:
            self._quarter = done * 4 // total
            self.print(f"[e2gan] {_clock(self.elapsed())} Training: step {done}/{total}")


class LiveConsole(Console):
    """One live rich display on a terminal: stage, a bar where the stage has a count, elapsed, ETA."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        from rich.console import Console as RichConsole
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.rich = RichConsole(file=stream, force_terminal=True, highlight=False)
        self.live = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.rich,
            transient=True,
        )
        self.task = self.live.add_task("Validating", total=None, note="")
        self.live.start()

    def print(self, line: str) -> None:
        self.live.console.print(line, markup=False, highlight=False)

    def show_stage(self, name: str, message: str) -> None:
        if name == "Done":
            return
        self.print(f"• {_clock(self.elapsed())} {name}{': ' + message if message else ''}")
        # A fresh task per stage (still one line): its clock, count and ETA start at zero.
        self.live.remove_task(self.task)
        self.task = self.live.add_task(name, total=None, note="")

    def show_progress(self, state: dict[str, Any]) -> None:
        counts = _counts(state, self.current)
        if counts is None:
            return
        done, total = counts
        note = f"best {self.best_psnr:.2f} dB" if self.current == "Searching" and self.best_psnr is not None else ""
        self.live.update(self.task, total=total, completed=done, note=note)
        self.live.refresh()

    def close(self) -> None:
        self.live.stop()


class SilentConsole(Console):
    """`--json`: records stage times for the summary, shows nothing."""


_CONSOLE: Console | None = None


def train_callbacks() -> list[Any]:
    """Ray Train callbacks the console asks for: fine-tune steps (none without a console)."""
    console = _CONSOLE
    if console is None or console.steps_file is None:
        return []
    from trainers.pipeline.train_progress import StepFile

    return [StepFile(str(console.steps_file))]


def use_console(console: Console | None) -> None:
    """The console every Progress of this process reports to (None: plain `[e2gan]` lines)."""
    global _CONSOLE
    _CONSOLE = console


def current_console() -> Console | None:
    return _CONSOLE


class ResultNotRecorded(RuntimeError):
    """The published result could not be written where the operator reads it: the job must fail."""


class Progress:
    def __init__(self, catalog: Any | None = None, key: str | None = None, echo: bool = True):
        self.catalog, self.key, self.echo = catalog, key, echo
        self.state: dict[str, Any] = {"stage": "Validating", "percent": 0, "message": "", "startedAt": time.time()}

    def update(self, **fields: Any) -> None:
        self.state.update(fields)
        self.state["updatedAt"] = time.time()
        if self.catalog is not None and self.key:
            try:
                self.catalog.write_progress(self.key, dict(self.state))
            except Exception as exc:
                if "result" in fields:  # the operator learns of the publication only from this write
                    raise ResultNotRecorded(
                        f"published, but the result could not be recorded at progress/{self.key}: {exc}"
                    ) from exc
                log.warning("could not write progress to the catalog: %s", exc)  # progress is advisory
        if _CONSOLE is not None and self.echo:
            _CONSOLE.update(dict(self.state))

    def stage(self, name: str, message: str = "") -> None:
        percent = int(100 * STAGES.index(name) / (len(STAGES) - 1)) if name in STAGES else self.state["percent"]
        if self.echo:
            if _CONSOLE is not None:
                _CONSOLE.stage(name, message)
            else:
                print(f"[e2gan] {name}{': ' + message if message else ''}", flush=True)
        self.update(stage=name, percent=percent, message=message)

    def failed(self, reason: str) -> None:
        self.update(stage="Failed", message=reason)


def console_for(stream: IO[str], *, json_only: bool) -> Console:
    """A live display on a terminal, plain lines elsewhere, nothing for `--json`."""
    if json_only:
        return SilentConsole()
    isatty = getattr(stream, "isatty", None)
    if callable(isatty) and isatty():
        return LiveConsole(stream)
    return PlainConsole(stream)


__all__ = [
    "STAGES",
    "Console",
    "LiveConsole",
    "PlainConsole",
    "Progress",
    "SilentConsole",
    "console_for",
    "current_console",
    "train_callbacks",
    "use_console",
]
