"""A stand-in for the `e2gan` trainer CLI, for operator tests that should take seconds, not minutes.

    e2gan distill --spec-json-b64 B64 --catalog URI --progress-key KEY
    e2gan base    --spec-json-b64 B64 --catalog URI --progress-key KEY

It speaks the same contract as the real trainer: reads the spec from the argument, writes
progress objects to the catalog store (stages, trials, best ranks), publishes a synthetic
adapter (valid safetensors and manifest) and records the catalog entry as `result`.
FAKE_TRAINER_STEP_SECONDS sets the pause after each progress write. A prompt containing
"FAIL" makes it fail the way the trainer does (progress stage Failed,
exit code 2). Tests put a `e2gan` shim running this module first on the PATH.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from catalog import open_catalog
from catalog.samples import SAMPLE_BASE_DIGEST, make_adapter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="e2gan")
    parser.add_argument("command", choices=["distill", "base"])
    parser.add_argument("--spec-json-b64", required=True)
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--progress-key", required=True)
    args = parser.parse_args(argv)
    spec = json.loads(base64.b64decode(args.spec_json_b64))
    catalog = open_catalog(args.catalog)
    state: dict[str, object] = {}

    pause = float(os.environ.get("FAKE_TRAINER_STEP_SECONDS", "0.05"))

    def progress(**fields: object) -> None:
        state.update(fields, updatedAt=time.time())
        catalog.write_progress(args.progress_key, dict(state))
        time.sleep(pause)  # long enough for the operator's poll to see each stage

    if args.command == "base":
        progress(stage="Training", percent=50, message=f"{len(spec['concepts'])} concepts")
        weights = f"{args.catalog.rstrip('/')}/bases/{SAMPLE_BASE_DIGEST[:16]}/base.safetensors"
        progress(stage="Done", percent=100, result={"uri": weights, "version": "v1", "digest": SAMPLE_BASE_DIGEST,
                                                     "metrics": {"psnr": 17.5}})
        return 0
    if "FAIL" in spec["prompt"]:
        progress(stage="Failed", percent=10, message="teacher: the prompt asked this fake trainer to fail")
        print("e2gan: error: teacher: the prompt asked this fake trainer to fail", file=sys.stderr)
        return 2
    trials = spec["search"]["trials"]
    progress(stage="Synthesizing", percent=10, message=f"{spec['data']['pairs']} pairs")
    for done in range(1, trials + 1):
        progress(stage="Searching", percent=20 + 40 * done // trials, trialsDone=done, trialsTotal=trials,
                 bestRanks={"up1": spec["search"]["ranks"][-1], "mid": spec["search"]["ranks"][0]})
    progress(stage="Training", percent=70, message=f"{spec['training']['steps']} steps")
    progress(stage="Publishing", percent=90, message=f"to {args.catalog}")
    folder = Path(tempfile.mkdtemp(prefix="fake-adapter-")) / "adapter"
    make_adapter(folder, spec["concept"], seed=len(spec["prompt"]))
    entry = catalog.publish(folder, base_digest=SAMPLE_BASE_DIGEST, concept=spec["concept"])
    progress(result=entry.model_dump(mode="json"))
    progress(stage="Done", percent=100, message="published")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
