"""assignment.toml validation: good specs load, bad ones name the file and the field."""

from pathlib import Path

import pytest

from grader.spec import AssignmentSpec, Course, SpecError, parse_spec

GOOD = """
id = "demo"
title = "Demo"
[[files]]
name = "demo.py"
max_kb = 10
[[checks]]
id = "works"
name = "it works"
points = 5
files = ["demo.py"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "assignment.toml"
    path.write_text(text)
    return path


def test_good_spec_has_defaults(tmp_path):
    spec = parse_spec(write(tmp_path, GOOD))
    assert spec.max_score == 5
    check = spec.check("works")
    assert (check.visibility, check.timeout) == ("visible", 60.0)
    assert spec.limits.memory_mb == 2048 and spec.needs_gpu is False


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (("points = 5", "points = -1"), "checks.works.points", "greater than 0"),  # a check by its id
        (('files = ["demo.py"]', 'visibility = "secret"'), "checks.works.visibility", "visible"),
        (("max_kb = 10", "max_kb = 10\nmaxkb = 3"), "files.0.maxkb", "not a field here (misspelt?"),
        (('id = "works"', 'id = "Works!"'), "checks.0.id", "pattern"),
        (('files = ["demo.py"]', 'files = ["model.pth"]'), "", "does not declare"),
        # a dataset name is checked against the known ones by `grader validate` (courses declare their own)
        (('title = "Demo"', 'title = "Demo"\ndatasets = ["Image Net"]'), "datasets.0", "pattern"),
    ],
)
def test_bad_field_is_named(tmp_path, edit, field, words):
    path = write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(SpecError) as info:
        parse_spec(path)
    text = str(info.value)
    assert text.startswith(f"{path}: {field}: " if field else f"{path}: ") and "\n" not in text  # one line
    assert words in text and "Value error" not in text


def test_duplicate_check_ids(tmp_path):
    dup = GOOD + '[[checks]]\nid = "works"\nname = "again"\npoints = 1\n'
    with pytest.raises(SpecError, match="repeated: works"):
        parse_spec(write(tmp_path, dup))


def test_not_toml_and_missing(tmp_path):
    with pytest.raises(SpecError, match="not valid TOML"):
        parse_spec(write(tmp_path, "id = [unclosed"))
    with pytest.raises(SpecError, match="no such file"):
        parse_spec(tmp_path / "nope.toml")


def test_course_checks_folder_name(tmp_path):
    (tmp_path / "assignments" / "other").mkdir(parents=True)
    (tmp_path / "assignments" / "other" / "assignment.toml").write_text(GOOD)
    course = Course(root=tmp_path)
    with pytest.raises(SpecError, match="folder is named 'other'"):
        course.spec("other")
    with pytest.raises(SpecError, match="unknown assignment 'exp9'"):
        course.spec("exp9")


def test_bundled_specs_are_valid(course):
    for aid in course.assignment_ids():
        assert isinstance(course.spec(aid), AssignmentSpec)
