"""Everything the job prints, except the console, goes to WORK_DIR/logs/e2gan.log.

Ray's core (C++) logs, Ray Data's and Tune's output, the workers' output that Ray
forwards to the driver, Python warnings and logging all write to file descriptors 1 and
2; those are pointed at the log file for the run, and the console (and the final JSON
line) write to duplicates of the original descriptors. Nothing is filtered: it is all in
the log, named in the summary; `--verbose` leaves the descriptors alone.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

LOG_NAME = "e2gan.log"


@dataclass
class Terminal:
    """Where the console writes while the job's own output goes to the log."""

    out: IO[str]
    err: IO[str]
    log_path: Path | None


@contextlib.contextmanager
def job_output(logs: Path, *, verbose: bool, json_only: bool = False) -> Iterator[Terminal]:
    """Send fds 1 and 2 to `logs/e2gan.log` for the block.

    `verbose`: leave them alone. `verbose` and `json_only` (a RayJob's pod log): the job's
    output goes to stderr, so stdout carries nothing but the final JSON line.
    """
    if verbose and json_only:
        sys.stdout.flush()
        saved = os.dup(1)
        out = io.TextIOWrapper(os.fdopen(os.dup(saved), "wb", buffering=0), write_through=True, line_buffering=True)
        os.dup2(2, 1)
        try:
            yield Terminal(out, sys.stderr, None)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            out.close()
        return
    if verbose:
        yield Terminal(sys.stdout, sys.stderr, None)
        return
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / LOG_NAME
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    out = io.TextIOWrapper(os.fdopen(os.dup(saved[0]), "wb", buffering=0), write_through=True, line_buffering=True)
    err = io.TextIOWrapper(os.fdopen(os.dup(saved[1]), "wb", buffering=0), write_through=True, line_buffering=True)
    # Keep the terminal's answer to isatty(): the copies point at the same device.
    with open(path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield Terminal(out, err, path)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            out.close()
            err.close()
