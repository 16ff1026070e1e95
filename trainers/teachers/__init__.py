"""Teachers edit source images into training targets: procedural or diffusion."""

from trainers.teachers.base import Teacher, TeacherUnavailable, per_image_seeds
from trainers.teachers.diffusion import DiffusionTeacher
from trainers.teachers.factory import TEACHER_KINDS, build_teacher, register_teacher_kind
from trainers.teachers.procedural import PROCEDURAL_TEACHERS, ProceduralTeacher, register_procedural

__all__ = [
    "PROCEDURAL_TEACHERS",
    "TEACHER_KINDS",
    "DiffusionTeacher",
    "ProceduralTeacher",
    "Teacher",
    "TeacherUnavailable",
    "build_teacher",
    "per_image_seeds",
    "register_procedural",
    "register_teacher_kind",
]
