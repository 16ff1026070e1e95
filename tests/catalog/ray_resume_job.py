"""A tiny Ray Train job for test_ray_storage: `python -m tests.catalog.ray_resume_job s3://bucket/prefix NAME`.

Run 1 checkpoints steps 0-2 to the catalog's S3 endpoint and dies at step 3; run 2 (same
name) must resume from step 2's checkpoint. Prints one JSON line with where run 2 started.
Lives in a module (not a test file) so Ray workers can import `train_loop`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile


def train_loop(config: dict) -> None:
    import ray.train

    start = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder, open(os.path.join(folder, "state.json")) as handle:
            start = json.load(handle)["step"] + 1
    for step in range(start, 5):
        if step == 3 and config["crash"]:
            raise RuntimeError("simulated kill at step 3")
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "state.json"), "w") as handle:
                json.dump({"step": step}, handle)
            ray.train.report(
                {"step": step, "start": start}, checkpoint=ray.train.Checkpoint.from_directory(folder)
            )


def main() -> None:
    uri, name = sys.argv[1], sys.argv[2]
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from catalog.ray_storage import storage_for

    path, filesystem = storage_for(uri)
    ray.init(num_cpus=2, object_store_memory=80 << 20, include_dashboard=False)
    try:

        def run(crash: bool):  # noqa: ANN202 - ray.train.Result
            return TorchTrainer(
                train_loop,
                train_loop_config={"crash": crash},
                scaling_config=ScalingConfig(num_workers=1),
                run_config=RunConfig(
                    name=name,
                    storage_path=path,
                    storage_filesystem=filesystem,
                    failure_config=FailureConfig(max_failures=0),
                ),
            ).fit()

        try:
            run(crash=True)
            first = "finished"
        except Exception as exc:  # the run is meant to die
            first = type(exc).__name__
        result = run(crash=False)
        print(json.dumps({"first": first, **result.metrics}))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
