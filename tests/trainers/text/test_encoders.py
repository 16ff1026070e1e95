from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from trainers.text import (
    CachedTextEncoder,
    CLIPTextEncoder,
    MiniLMEncoder,
    TextEncoder,
    TokenizerFilesMissing,
    load_text_encoder,
    minilm_folder,
)
from trainers.text.tiny import build_tiny_clip_text

PROMPTS = ["put on sunglasses", "Van Gogh style", "make it winter"]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    return MiniLMEncoder()


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip_text(tmp_path_factory.mktemp("clip-text"))


def test_minilm_is_pretrained_and_normalised(minilm: MiniLMEncoder) -> None:
    assert isinstance(minilm, TextEncoder) and minilm.dim == 384
    v = minilm.encode(PROMPTS + ["wear sunglasses"])
    assert v.shape == (4, 384) and v.dtype == torch.float32
    assert torch.allclose(v.norm(dim=1), torch.ones(4), atol=1e-5)
    # Real weights: paraphrases are close, different edits are not.
    assert float(v[0] @ v[3]) > 0.7 > 0.4 > float(v[0] @ v[1])


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None, reason="sentence-transformers not installed"
)
def test_minilm_matches_sentence_transformers(minilm: MiniLMEncoder) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_folder()), device="cpu", local_files_only=True)
    expected = torch.from_numpy(reference.encode(PROMPTS, normalize_embeddings=True))
    assert torch.allclose(minilm.encode(PROMPTS), expected, atol=1e-5)


class _Counting(CachedTextEncoder):
    def __init__(self, cache_size: int) -> None:
        super().__init__(cache_size)
        self.name, self.dim, self.seen = "counting", 2, []

    def _encode_batch(self, prompts: list[str]) -> torch.Tensor:
        self.seen.append(list(prompts))
        return torch.tensor([[float(len(p)), 1.0] for p in prompts])


def test_cache_encodes_each_prompt_once() -> None:
    enc = _Counting(cache_size=8)
    first = enc.encode(["a", "bb", "a"])
    assert first[:, 0].tolist() == [1.0, 2.0, 1.0] and enc.seen == [["a", "bb"]]
    enc.encode(["bb", "ccc"])
    assert enc.seen == [["a", "bb"], ["ccc"]]


def test_cache_is_lru_bounded() -> None:
    enc = _Counting(cache_size=2)
    enc.encode(["a"])
    enc.encode(["b"])
    enc.encode(["a"])  # refreshes a; b is now the oldest
    enc.encode(["c"])  # evicts b
    enc.encode(["a", "b"])
    assert enc.seen == [["a"], ["b"], ["c"], ["b"]]


def test_encode_edge_cases(minilm: MiniLMEncoder) -> None:
    assert minilm.encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        minilm.encode("one string")  # type: ignore[arg-type]


def test_cached_rows_equal_fresh(minilm: MiniLMEncoder) -> None:
    fresh = MiniLMEncoder().encode(["a brand new prompt", PROMPTS[0]])
    minilm.encode([PROMPTS[0]])
    assert torch.allclose(minilm.encode(["a brand new prompt", PROMPTS[0]]), fresh, atol=1e-6)


def test_clip_text_encoder(clip_folder: Path) -> None:
    enc = CLIPTextEncoder(clip_folder)
    v = enc.encode(PROMPTS)
    assert enc.dim == 32 and v.shape == (3, 32)
    assert torch.allclose(v.norm(dim=1), torch.ones(3), atol=1e-5)
    assert not torch.allclose(v[0], v[1])


def test_load_text_encoder_dispatch(minilm: MiniLMEncoder, clip_folder: Path) -> None:
    assert isinstance(load_text_encoder(None), MiniLMEncoder)
    assert isinstance(load_text_encoder("minilm"), MiniLMEncoder)
    assert isinstance(load_text_encoder(str(clip_folder)), CLIPTextEncoder)  # pipeline-style folder
    assert isinstance(load_text_encoder(f"clip:{clip_folder}"), CLIPTextEncoder)
    assert isinstance(load_text_encoder(minilm_folder()), MiniLMEncoder)  # any sentence encoder folder
    with pytest.raises(ValueError, match="unknown text encoder"):
        load_text_encoder("no-such-encoder")


def test_clip_model_folder_with_tokenizer_beside(clip_folder: Path, tmp_path: Path) -> None:
    # A flat CLIP folder: weights, config and tokenizer files side by side.
    for sub in ("text_encoder", "tokenizer"):
        for f in (clip_folder / sub).iterdir():
            (tmp_path / f.name).write_bytes(f.read_bytes())
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "clip_text_model"
    assert load_text_encoder(str(tmp_path)).encode(["x"]).shape == (1, 32)


def test_tiny_tokenizer_guard(clip_folder: Path, tmp_path: Path) -> None:
    # transformers 5 loads a folder without vocab files as a 2-token tokenizer, silently.
    (tmp_path / "text_encoder").mkdir()
    for f in (clip_folder / "text_encoder").iterdir():
        (tmp_path / "text_encoder" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "tokenizer_config.json").write_text(
        (clip_folder / "tokenizer" / "tokenizer_config.json").read_text()
    )
    with pytest.raises(TokenizerFilesMissing, match=f"tokenizer files missing in {tmp_path / 'tokenizer'}"):
        CLIPTextEncoder(tmp_path)
