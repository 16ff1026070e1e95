from __future__ import annotations

import pytest

from e2gan_api.spec import TeacherSpec
from trainers.teachers import TEACHER_KINDS, ProceduralTeacher, TeacherUnavailable, build_teacher


def test_every_spec_kind_has_a_builder() -> None:
    kinds = TeacherSpec.model_fields["kind"].annotation.__args__
    assert set(kinds) == set(TEACHER_KINDS)


def test_procedural_defaults_to_concept() -> None:
    teacher = build_teacher(TeacherSpec(), concept="winter")
    assert isinstance(teacher, ProceduralTeacher) and teacher.id == "procedural/winter@1"


def test_procedural_name_overrides_concept() -> None:
    assert build_teacher(TeacherSpec(name="thermal"), concept="heat").id == "procedural/thermal@1"


def test_unknown_procedural_concept() -> None:
    with pytest.raises(TeacherUnavailable, match="no procedural teacher named 'sunglasses'"):
        build_teacher(TeacherSpec(), concept="sunglasses")
