"""Fault injection for drills and tests: a teacher whose process dies hard, once.

It lives in the package because Ray workers import it; test files cannot hold it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from e2gan_api.spec import TeacherSpec
from trainers.teachers.base import Teacher
from trainers.teachers.factory import build_teacher


def claim(marker: Path) -> bool:
    """True for exactly one caller across processes: whoever creates the marker file."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        return True
    except FileExistsError:
        return False


class CrashOnceTeacher:
    """Delegates to a teacher; on its on_call-th edit the first process to claim marker exits.

    It exits after the edit is computed, the worst moment: the work is paid, nothing is stored.
    """

    def __init__(self, inner: Teacher, marker: Path, on_call: int = 2) -> None:
        self.inner, self.marker, self.on_call = inner, Path(marker), on_call
        self.calls = 0

    @property
    def id(self) -> str:
        return self.inner.id

    def edit(self, images: np.ndarray, prompt: str, seed: int | Sequence[int]) -> np.ndarray:
        self.calls += 1
        out = self.inner.edit(images, prompt, seed)
        if self.calls == self.on_call and claim(self.marker):
            os._exit(17)  # no cleanup, no exception: what an OOM kill or a lost node looks like
        return out


def _crash_once(spec: TeacherSpec, concept: str, *, marker: str, on_call: int, **options: Any) -> Teacher:
    return CrashOnceTeacher(build_teacher(spec, concept, **options), Path(marker), on_call)


def crash_once_factory(marker: str | Path, on_call: int = 2) -> functools.partial[Teacher]:
    """A teacher factory for synthesize_pairs(teacher_factory=...) that kills one actor once."""
    return functools.partial(_crash_once, marker=str(marker), on_call=on_call)
