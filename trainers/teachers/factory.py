"""build_teacher: a TeacherSpec and a concept -> a Teacher, one registered builder per kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from e2gan_api.spec import TeacherSpec
from trainers.teachers.base import Teacher
from trainers.teachers.clip_filter import check_clip_folder
from trainers.teachers.diffusion import DiffusionTeacher
from trainers.teachers.procedural import ProceduralTeacher

TeacherBuilder = Callable[..., Teacher]

TEACHER_KINDS: dict[str, TeacherBuilder] = {}


def register_teacher_kind(kind: str) -> Callable[[TeacherBuilder], TeacherBuilder]:
    def wrap(fn: TeacherBuilder) -> TeacherBuilder:
        TEACHER_KINDS[kind] = fn
        return fn

    return wrap


@register_teacher_kind("procedural")
def _procedural(spec: TeacherSpec, concept: str, **options: Any) -> Teacher:
    return ProceduralTeacher(spec.name or concept)


@register_teacher_kind("instruct-pix2pix")
@register_teacher_kind("sdedit")
def _diffusion(spec: TeacherSpec, concept: str, **options: Any) -> Teacher:
    return DiffusionTeacher(spec, **options)


def build_teacher(spec: TeacherSpec, concept: str, **options: Any) -> Teacher:
    """The teacher a spec names. options go to the builder (DiffusionTeacher: device,
    vae_slicing, vae_tiling, compile_backend). Raises TeacherUnavailable when it cannot be built here."""
    if spec.kind not in TEACHER_KINDS:
        raise ValueError(f"unknown teacher kind {spec.kind!r}; known: {', '.join(sorted(TEACHER_KINDS))}")
    if spec.clip_model:
        check_clip_folder(spec.clip_model)  # refuse a bad filter before any source is read
    return TEACHER_KINDS[spec.kind](spec, concept, **options)
