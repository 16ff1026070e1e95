"""Bytes stored per concept: a LoRA adapter vs a full generator, as written to the catalog.

For each rank pattern (uniform ranks and, with --adapter, the searched one) the adapter
is saved as the catalog stores it (PEFT safetensors, in the spec's default
`export.adapterDtype`, fp16; fp32 is reported beside it) next to the full student generator
and a pix2pix ResNet-9 (one per concept from scratch); the paper reports 121× fewer
trainable parameters than pix2pix.

    python bench/bytes_per_concept.py --adapter catalog/adapters/<base>/<concept>/v1
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from common import emit  # type: ignore[import-not-found]
from safetensors.torch import save_file

from e2gan_api.spec import ExportSpec
from trainers.models import ResnetGenerator
from trainers.models.crucial import CRUCIAL_LAYERS
from trainers.models.weights import load_generator, save_generator
from trainers.pipeline.resources import builtin_base_path
from trainers.train.lora import attach_lora, save_adapter, trainable_parameters


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="same run (it is fast)")
    p.add_argument("--adapter", type=Path, help="a published adapter folder: its ranks are measured too")
    args = p.parse_args()
    stored = ExportSpec().adapter_dtype  # what `distill` publishes unless the spec says otherwise
    base = load_generator(builtin_base_path())
    patterns = {f"uniform_r{r}": dict.fromkeys(CRUCIAL_LAYERS, r) for r in (1, 2, 4, 8)}
    if args.adapter:
        patterns["searched"] = json.loads((args.adapter / "manifest.json").read_text())["ranks"]
    with tempfile.TemporaryDirectory() as tmp:
        full = save_generator(base, Path(tmp) / "full.safetensors").stat().st_size
        # What a from-scratch approach stores per concept: a whole pix2pix ResNet-9 (the paper's 121×).
        pix2pix = Path(tmp) / "pix2pix.safetensors"
        save_file(ResnetGenerator().state_dict(), str(pix2pix))
        pix2pix_bytes = pix2pix.stat().st_size
        rows = {}
        for name, ranks in patterns.items():
            model = attach_lora(base, ranks)
            sizes = {dtype: (save_adapter(model, Path(tmp) / f"{name}-{dtype}", dtype=dtype)
                             / "adapter_model.safetensors").stat().st_size for dtype in ("fp16", "fp32")}
            size = sizes[stored]
            rows[name] = {"ranks": ranks, "params": trainable_parameters(model), "dtype": stored, "bytes": size,
                          "bytes_fp32": sizes["fp32"], "ratio_vs_student": round(full / size, 1),
                          "ratio_vs_pix2pix": round(pix2pix_bytes / size, 1)}
            print(f"{name:12s} {size:9d} bytes {stored} ({sizes['fp32']} fp32)  {full / size:6.1f}x smaller "
                  f"than the student, {pix2pix_bytes / size:6.1f}x than pix2pix", flush=True)
    emit({"bench": "bytes_per_concept", "full_generator_bytes": full, "pix2pix_bytes": pix2pix_bytes,
          "full_generator_params": sum(p.numel() for p in base.parameters()), "adapters": rows})


if __name__ == "__main__":
    main()
