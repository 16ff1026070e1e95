"""The job's progress object: progress is advisory, the published result is not (issue 12)."""

from __future__ import annotations

from typing import Any

import pytest

from trainers.pipeline.progress import Progress, ResultNotRecorded


class FailingStore:
    """A catalog whose progress writes fail (a store outage at the end of a job)."""

    def __init__(self) -> None:
        self.attempts: list[dict[str, Any]] = []

    def write_progress(self, key: str, payload: dict[str, Any]) -> None:
        self.attempts.append(payload)
        raise OSError("connection reset by peer")


def test_a_failed_progress_write_is_tolerated_but_a_failed_result_write_fails_the_job() -> None:
    store = FailingStore()
    progress = Progress(store, "ns/sketch/0123456789abcdef", echo=False)
    progress.stage("Training", "300 steps")  # advisory: the job goes on
    with pytest.raises(ResultNotRecorded, match="progress/ns/sketch/0123456789abcdef: connection reset"):
        progress.update(result={"uri": "s3://b/c", "version": "v1"})
    assert len(store.attempts) == 2
