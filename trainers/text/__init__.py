"""Text encoders: prompts -> the generator's text condition."""

from trainers.text.base import CachedTextEncoder, TextEncoder
from trainers.text.clip import CLIPTextEncoder
from trainers.text.hub import MIN_VOCAB, TokenizerFilesMissing, check_tokenizer, prepare_offline
from trainers.text.load import load_text_encoder
from trainers.text.minilm import MiniLMEncoder, minilm_folder

__all__ = [
    "MIN_VOCAB",
    "CLIPTextEncoder",
    "CachedTextEncoder",
    "MiniLMEncoder",
    "TextEncoder",
    "TokenizerFilesMissing",
    "check_tokenizer",
    "load_text_encoder",
    "minilm_folder",
    "prepare_offline",
]
