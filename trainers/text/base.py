"""The TextEncoder interface and an LRU cache shared by the encoders."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class TextEncoder(Protocol):
    """Prompts -> float32 [N, dim] embeddings on the CPU, the generator's text condition."""

    name: str
    dim: int

    def encode(self, prompts: list[str]) -> torch.Tensor: ...


class CachedTextEncoder(ABC):
    """Encodes only prompts it has not seen recently: training repeats a few prompts."""

    name: str
    dim: int

    def __init__(self, cache_size: int = 1024) -> None:
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    @abstractmethod
    def _encode_batch(self, prompts: list[str]) -> torch.Tensor:
        """Encode distinct prompts: float32 [N, dim] on the CPU."""

    def encode(self, prompts: list[str]) -> torch.Tensor:
        if isinstance(prompts, str):
            raise TypeError("encode takes a list of prompts, not one string")
        if not prompts:
            return torch.empty(0, self.dim)
        # One lock around lookup and model call: simple, and encodes are rare once warm.
        with self._lock:
            missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
            fresh = {}
            if missing:
                rows = self._encode_batch(missing).detach().to("cpu", torch.float32)
                fresh = dict(zip(missing, rows, strict=True))
            out = torch.stack([fresh[p] if p in fresh else self._cache[p] for p in prompts])
            for p in prompts:
                if p in fresh:
                    self._cache[p] = fresh[p]
                self._cache.move_to_end(p)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, dim={self.dim})"
