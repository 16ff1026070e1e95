"""The CLIP directional-similarity filter: drop pairs whose edit does not follow the prompt.

As in the InstructPix2Pix data pipeline: the change in CLIP image embedding from source to
target should point the way the text changes. Here the text changes from a neutral caption
("a photo") to the edit prompt. An edit that changes nothing scores 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from trainers.teachers.base import TeacherUnavailable

NEUTRAL_CAPTION = "a photo"
# OpenAI CLIP's preprocessing constants (the same in every CLIP checkpoint's preprocessor).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def check_clip_folder(path: str) -> Path:
    """The folder of a transformers CLIPModel, or TeacherUnavailable naming teacher.clipModel."""
    folder = Path(path).expanduser()
    config = folder / "config.json"
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (OSError, ValueError):
        model_type = None
    if model_type != "clip" or not any(p.name.endswith((".safetensors", ".bin")) for p in folder.iterdir()):
        raise TeacherUnavailable(
            f"teacher.clipModel: {folder} is not a CLIP model folder (config.json with model_type clip, "
            "weights, tokenizer files), as written by CLIPModel.save_pretrained"
        )
    return folder


class ClipFilter:
    """Scores (source, target) pairs for one prompt; keeps those at or above threshold."""

    def __init__(self, path: str, threshold: float, device: str = "cpu") -> None:
        self.folder = check_clip_folder(path)
        self.threshold = threshold
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None
        self._text: dict[str, Any] = {}

    def _load(self) -> None:
        from transformers import CLIPModel, CLIPTokenizer

        try:
            self._model = CLIPModel.from_pretrained(self.folder, local_files_only=True).eval().to(self.device)
            self._tokenizer = CLIPTokenizer.from_pretrained(self.folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise TeacherUnavailable(f"teacher.clipModel: could not load {self.folder}: {exc}") from exc

    def _text_direction(self, prompt: str) -> Any:
        import torch

        if prompt not in self._text:
            tokens = self._tokenizer([NEUTRAL_CAPTION, prompt], padding=True, truncation=True, return_tensors="pt")
            with torch.inference_mode():
                t = self._model.get_text_features(**{k: v.to(self.device) for k, v in tokens.items()})
            t = _features(t)
            t = torch.nn.functional.normalize(t.float(), dim=-1)
            self._text[prompt] = t[1] - t[0]
        return self._text[prompt]

    def _image_features(self, images: np.ndarray) -> Any:
        import torch

        from trainers.teachers.resize import resize

        size = int(self._model.config.vision_config.image_size)
        x = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        x = resize(x, (size, size))
        mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)
        with torch.inference_mode():
            f = self._model.get_image_features(pixel_values=(x - mean) / std)
        return torch.nn.functional.normalize(_features(f).float(), dim=-1)

    def scores(self, sources: np.ndarray, targets: np.ndarray, prompt: str) -> np.ndarray:
        """Cosine of (target - source) image direction with the text direction, per pair."""
        import torch

        if self._model is None:
            self._load()
        if len(sources) == 0:
            return np.zeros(0, np.float32)
        direction = self._image_features(targets) - self._image_features(sources)
        text = self._text_direction(prompt)
        sim = torch.nn.functional.cosine_similarity(direction, text[None].expand_as(direction), dim=-1, eps=1e-8)
        return sim.cpu().numpy().astype(np.float32)

    def keep(self, sources: np.ndarray, targets: np.ndarray, prompt: str) -> np.ndarray:
        """A boolean mask of the pairs that pass."""
        return self.scores(sources, targets, prompt) >= self.threshold


def _features(output: Any) -> Any:
    # transformers 5 may return a model output; 4.x returns the projected tensor.
    return output if hasattr(output, "dim") else output.pooler_output
