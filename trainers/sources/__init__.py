"""Source images: builtin procedural scenes, local folders (and, later, s3://)."""

from trainers.sources import s3 as _s3  # noqa: F401 - registers the s3:// opener over the placeholder
from trainers.sources.folder import fit_image, folder_images, list_images, load_image_bytes
from trainers.sources.hashing import source_hash, source_hashes
from trainers.sources.open import SOURCE_OPENERS, SourceImages, open_source, register_source
from trainers.sources.scenes import synthetic_scenes

__all__ = [
    "SOURCE_OPENERS",
    "SourceImages",
    "fit_image",
    "folder_images",
    "list_images",
    "load_image_bytes",
    "open_source",
    "register_source",
    "source_hash",
    "source_hashes",
    "synthetic_scenes",
]
