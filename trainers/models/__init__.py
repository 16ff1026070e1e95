"""Student and baseline networks."""

from trainers.models.crucial import CRUCIAL_LAYERS, modules_in
from trainers.models.discriminator import PatchDiscriminator
from trainers.models.generator import ConceptGenerator, E2GANGenerator, GeneratorConfig
from trainers.models.pix2pix import ResnetGenerator
from trainers.models.weights import load_generator, save_generator, weights_digest

__all__ = [
    "CRUCIAL_LAYERS",
    "ConceptGenerator",
    "E2GANGenerator",
    "GeneratorConfig",
    "PatchDiscriminator",
    "ResnetGenerator",
    "load_generator",
    "modules_in",
    "save_generator",
    "weights_digest",
]
