"""teacher.scheduler -> a diffusers scheduler built from the folder's own scheduler config."""

from __future__ import annotations

from typing import Any

# name -> (diffusers class, extra config); "default" keeps the folder's scheduler.
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "dpm-solver++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}


def make_scheduler(name: str, current: Any) -> Any:
    """The scheduler `name` configured like `current` (same betas and training timesteps)."""
    if name == "default":
        return current
    if name not in SCHEDULERS:
        raise ValueError(f"unknown teacher.scheduler {name!r}; known: default, {', '.join(SCHEDULERS)}")
    import diffusers

    cls_name, extra = SCHEDULERS[name]
    return getattr(diffusers, cls_name).from_config(current.config, **extra)
