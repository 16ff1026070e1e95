"""Progress objects → status fields, kstatus conditions, merge patches (pure functions)."""

from __future__ import annotations

import math
from pathlib import Path

from e2gan_api.status import ConceptAdapterStatus
from e2gan_operator.conditions import Outcome, conditions, merge_patch
from e2gan_operator.observe import (
    fidelity_column,
    progress_status,
    ranks_column,
    result_of,
    stage_of,
    trials_column,
)
from e2gan_operator.reasons import Reason


def test_progress_from_the_trainer_is_copied() -> None:
    p = {"stage": "Searching", "percent": 37, "trialsDone": 2, "trialsTotal": 4, "bestRanks": {"up1": 8, "mid": 4},
         "message": "4 rank patterns", "startedAt": 1.0}
    status = progress_status(p)
    assert status == {"percent": 37.0, "trialsDone": 2, "trialsTotal": 4, "bestRanks": {"up1": 8, "mid": 4},
                      "message": "4 rank patterns"}
    assert stage_of(p, "Pending") == "Searching" and trials_column(status) == "2/4"


def test_hostile_progress_is_clipped_to_the_status_schema() -> None:
    p = {"stage": "<script>", "percent": math.inf, "trialsDone": -5, "trialsTotal": 10**12,
         "bestRanks": {"a": "x", "b": 10**9, "c": True}, "message": "m" * 10_000}
    status = progress_status(p)
    assert stage_of(p, "Training") == "Training"
    assert status["percent"] == 0.0 and status["trialsDone"] == 0 and status["trialsTotal"] == 100_000
    assert status["bestRanks"] == {"b": 4096} and len(status["message"]) == 1024
    ConceptAdapterStatus.model_validate({"progress": status})  # within every bound of the status model
    assert progress_status(None)["trialsTotal"] == 0 and progress_status("junk")["percent"] == 0.0  # type: ignore[arg-type]


def test_columns() -> None:
    assert ranks_column({"b": 4, "a": 8}) == "8/4"
    many = {f"layer{i:03d}": (2, 4, 8)[i % 3] for i in range(40)}
    assert ranks_column(many) == "2x14,4x13,8x13"
    assert fidelity_column({"ssim": 0.81234, "psnr": 24.567}) == "24.57 dB"
    assert fidelity_column({"ssim": 0.81234}) == "SSIM 0.812" and fidelity_column({}) == ""


def test_result_reads_the_catalog_entry_written_by_the_trainer() -> None:
    p = {"result": {"uri": "s3://a/adapters/x/v3", "version": "v3", "digest": "d" * 64, "base_model_digest": "b" * 64,
                    "metrics": {"psnr": 21.5, "note": "text", "nan": math.nan}, "ranks": {"up1": 4}}}
    r = result_of(p)
    assert r is not None and (r.version, r.base_digest, r.metrics, r.ranks) == ("v3", "b" * 64, {"psnr": 21.5}, {"up1": 4})
    assert result_of({"result": {"version": "v1"}}) is None and result_of({}) is None


def test_conditions_follow_kstatus_and_keep_transition_times() -> None:
    first = conditions(Outcome("reconciling", Reason.RUNNING, "Training 50%"), 2, None)
    by = {c["type"]: c for c in first}
    assert (by["Ready"]["status"], by["Reconciling"]["status"], by["Stalled"]["status"]) == ("False", "True", "False")
    assert by["Ready"]["message"] == "Training 50%" and by["Stalled"]["message"] == ""
    again = conditions(Outcome("reconciling", Reason.RUNNING, "Training 60%"), 2, [dict(c, lastTransitionTime="T0") for c in first])
    assert all(c["lastTransitionTime"] == "T0" for c in again)
    done = conditions(Outcome("ready", Reason.PUBLISHED, "published"), 3, again)
    by = {c["type"]: c for c in done}
    assert by["Ready"]["status"] == "True" and by["Ready"]["lastTransitionTime"] != "T0"
    assert by["Stalled"]["lastTransitionTime"] == "T0" and by["Ready"]["observedGeneration"] == 3
    ConceptAdapterStatus.model_validate({"conditions": done})


def test_merge_patch_removes_changes_and_skips_equal() -> None:
    old = {"a": 1, "m": {"x": 1, "y": 2}, "l": [1], "gone": True}
    new = {"a": 1, "m": {"x": 1, "y": 3}, "l": [1, 2], "added": "v"}
    assert merge_patch(old, new) == {"m": {"y": 3}, "l": [1, 2], "added": "v", "gone": None}
    assert merge_patch(new, new) == {}


def test_periodic_checks_share_one_read_per_series(tmp_path: Path) -> None:
    import asyncio

    from catalog import open_catalog
    from catalog.samples import SAMPLE_BASE_DIGEST, make_adapter
    from e2gan_operator.catalogs import Catalogs

    catalog = open_catalog(tmp_path / "catalog")
    for concept in ("a", "b"):
        make_adapter(tmp_path / concept, concept, seed=1)
        catalog.publish(tmp_path / concept, base_digest=SAMPLE_BASE_DIGEST, concept=concept)
    calls: list[str] = []
    catalogs = Catalogs(on_call=calls.append)

    async def checks() -> list[list[str]]:
        found = await asyncio.gather(*(catalogs.shared_versions(str(tmp_path / "catalog"), c, 60.0)
                                       for c in ["a", "b"] * 50))
        found.append(await catalogs.shared_versions(str(tmp_path / "catalog"), "a", 60.0))
        return [[e.concept for e in entries] for entries in found]

    results = asyncio.run(checks())
    assert results[:2] == [["a"], ["b"]] and len(results) == 101
    assert calls == ["versions", "versions"]  # 101 checks of two concepts: one read of each series
    catalogs.close()
