"""Ray-placed training on CPU: a 2-worker gloo DDP fine-tune with its discriminator, a rank
search on the validation split, and the fractional-GPU request each trial makes."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from e2gan_api.spec import ConceptAdapterSpec
from trainers.models import E2GANGenerator, GeneratorConfig
from trainers.pipeline.resources import gpus_per_trial
from trainers.train.loop import PairArrays
from trainers.train.objective import Objective
from trainers.train.search import SearchSettings, trial_resources

TINY = GeneratorConfig(width=8, text_dim=16, context_tokens=2, heads=2)


def _pairs(n: int, seed: int = 0) -> PairArrays:
    """uint8 pairs, as the pipelines pass them (Ray ships the arrays once, zero-copy)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    return PairArrays(x, 255 - x, torch.randn(1, 16, generator=torch.Generator().manual_seed(seed)))


def test_trials_request_fractional_gpus_only_when_the_job_has_gpus():
    cpu = ConceptAdapterSpec(concept="c", prompt="p")
    assert gpus_per_trial(cpu) == 0.0
    gpu = ConceptAdapterSpec(concept="c", prompt="p", resources={"gpusPerWorker": 1}, search={"trials": 8, "parallelTrials": 8})
    assert gpus_per_trial(gpu) == 0.25  # 4 trials per GPU: parallelTrials is not capped by the GPU count
    explicit = gpu.model_copy(update={"search": gpu.search.model_copy(update={"gpus_per_trial": 0.5})})
    assert gpus_per_trial(explicit) == 0.5
    settings = SearchSettings(ranks=[1], trials=8, parallel_trials=8, steps=4, batch_size=2, lr=1e-3, tolerance_db=0.1,
                              early_stopping=False, cpus_per_trial=1.0, gpus_per_trial=gpus_per_trial(gpu))
    assert trial_resources(settings) == {"cpu": 1.0, "gpu": 0.25}
    for bad in (0, 17):
        with pytest.raises(ValueError, match="gpusPerTrial|gpus_per_trial"):
            ConceptAdapterSpec(concept="c", prompt="p", search={"gpusPerTrial": bad})


@pytest.mark.slow
def test_two_worker_gloo_ddp_fine_tune_trains_lora_and_the_discriminator(ray_cluster, tmp_path):
    from trainers.train.concept import ConceptTrainSettings, train_concept

    base = E2GANGenerator(TINY).eval()
    objective = Objective(ndf=8, ema_decay=0.5)
    settings = ConceptTrainSettings(ranks={"up": 1, "cross_attn": 1}, steps=3, batch_size=2, lr=1e-2, seed=0,
                                    max_seconds=300, objective=objective.to_dict(), workers=2, cpus_per_worker=1.0,
                                    checkpoint_every=3)
    adapter = train_concept(base, _pairs(8), settings, str(tmp_path / "ray"), "ddp").adapter
    lora_b = [v for k, v in load_file(str(adapter / "adapter_model.safetensors")).items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # peft starts B at zero: it trained
    checkpoint = next(p for p in (tmp_path / "ray" / "ddp").glob("checkpoint_*") if p.is_dir())
    assert (checkpoint / "discriminator.safetensors").is_file() and (checkpoint / "ema").is_dir()
    assert (checkpoint / "step.txt").read_text() == "3"


@pytest.mark.slow
def test_rank_search_scores_the_validation_split_and_reports_its_noise(ray_cluster, tmp_path):
    from trainers.train.search import run_search

    settings = SearchSettings(ranks=[1, 2], trials=2, parallel_trials=2, steps=2, batch_size=2, lr=1e-2,
                              tolerance_db=0.0, early_stopping=False, report_every=2,
                              objective=Objective.l1_only().to_dict())
    report = run_search(E2GANGenerator(TINY).eval(), _pairs(6), _pairs(4, seed=1), settings, storage_path=str(tmp_path))
    assert report["split"] == "validation" and len(report["trials"]) == 2
    assert all(t["device"] == "cpu" and t["psnr_se"] > 0 for t in report["trials"])
    assert report["noise_db"] > 0 and report["tolerance_below_noise"] is True  # 0 dB is below any noise


@pytest.mark.slow
def test_two_workers_stop_together_on_a_validation_plateau_and_publish_the_best_check(ray_cluster, tmp_path):
    from trainers.train.concept import ConceptTrainSettings, train_concept

    base = E2GANGenerator(TINY).eval()
    # A learning rate too small to gain 0.05 dB: the second check is a plateau with patience 1.
    settings = ConceptTrainSettings(ranks={"up": 1}, steps=500, batch_size=2, lr=1e-9, seed=0, max_seconds=300,
                                    objective=Objective.l1_only().to_dict(), workers=2, cpus_per_worker=1.0,
                                    checkpoint_every=100, validation_every=1, plateau_patience=1)
    result = train_concept(base, _pairs(8), settings, str(tmp_path / "ray"), "plateau", validation=_pairs(4, seed=1))
    record = result.plateau
    assert record["stopped_early"] is True and record["last_step"] == 2  # not 500: both workers stopped (no hang)
    assert record["best_step"] in (1, 2) and [s for s, _ in record["checks"]] == [1, 2]
    checkpoint = max(p for p in (tmp_path / "ray" / "plateau").glob("checkpoint_*") if p.is_dir())
    assert (checkpoint / "step.txt").read_text() == "2"
    published = (result.adapter / "adapter_model.safetensors").read_bytes()
    assert published == (checkpoint / "best" / "adapter_model.safetensors").read_bytes()
