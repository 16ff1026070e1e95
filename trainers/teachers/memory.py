"""How many images a diffusion teacher edits per call, from the GPU's free memory."""

from __future__ import annotations

CPU_BATCH = 4
MAX_BATCH = 32
# Peak activation bytes per image at 512 px in bf16 (UNet with 3-way guidance, or the VAE
# decoder, whichever is larger); scales with pixels. Measured order of magnitude for SD-1.5.
BYTES_PER_IMAGE_512 = {"instruct-pix2pix": 1.25 * 1024**3, "sdedit": 1.0 * 1024**3}
HEADROOM = 0.8  # keep a fifth free: allocator fragmentation, compile workspaces


def auto_batch_size(free_bytes: int, weight_bytes: int, resolution: int, kind: str) -> int:
    """The largest power of two that fits free memory (1 to MAX_BATCH)."""
    per_image = BYTES_PER_IMAGE_512.get(kind, BYTES_PER_IMAGE_512["instruct-pix2pix"]) * (resolution / 512) ** 2
    fits = int((free_bytes * HEADROOM - weight_bytes) // per_image)
    batch = 1
    while batch * 2 <= min(fits, MAX_BATCH):
        batch *= 2
    return batch


def free_gpu_bytes() -> int:
    """Free bytes on the current CUDA device, as the driver reports them."""
    import torch

    free, _total = torch.cuda.mem_get_info()
    return int(free)
