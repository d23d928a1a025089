"""docs/authoring.md stays true: its TOML, JSON and Python examples are parsed, validated or run, and every
field of assignment.toml is documented."""

from __future__ import annotations

import json
import re
from pathlib import Path

import tomllib
from pydantic import BaseModel

from grader.assets import AssetPlan
from grader.selftest import Expected
from grader.spec import AssignmentSpec, CourseConfig
from tests.conftest import ROOT

DOC = (ROOT / "docs" / "authoring.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC, re.S)


def test_toml_examples_are_valid():
    kinds = []
    for text in blocks("toml"):
        raw = tomllib.loads(text)
        if "id" in raw:
            spec = AssignmentSpec.model_validate(raw)
            assert spec.total == sum(c.points for c in spec.checks if c.enabled)
            kinds.append("assignment")
        elif "datasets" in raw:
            CourseConfig.model_validate(raw)
            kinds.append("course")
        else:
            for body in raw.values():
                Expected.model_validate(body)
            kinds.append("expected")
    assert sorted(kinds) == ["assignment", "course", "expected"]


def test_json_example_is_an_asset_plan():
    (text,) = blocks("json")
    assert AssetPlan.model_validate(json.loads(text)).runs[0].copy_files


def test_python_examples_run(tmp_path: Path):
    sources = blocks("python")
    for text in sources:
        compile(text, "authoring.md", "exec")
    threshold = next(t for t in sources if "Threshold(" in t)
    exec(threshold, {})  # noqa: S102 - our own documentation; its assert is the test
    reader = next(t for t in sources if "LAYOUT =" in t)
    namespace: dict = {}
    exec(reader, namespace)  # noqa: S102
    namespace["prepare"](tmp_path)
    x, y = namespace["read"](tmp_path, train=False)
    assert tuple(x.shape) == (200, 2) and tuple(y.shape) == (200, 1)


def _fields(model: type[BaseModel], seen: set[type]) -> set[str]:
    names = set()
    for name, info in model.model_fields.items():
        names.add(name)
        for arg in [info.annotation, *getattr(info.annotation, "__args__", ())]:
            inner = getattr(arg, "__args__", (arg,))
            for t in (arg, *inner):
                if isinstance(t, type) and issubclass(t, BaseModel) and t not in seen:
                    seen.add(t)
                    names |= _fields(t, seen)
    return names


def test_every_spec_field_is_documented():
    forms = ("`{}", " {}`", "{} =", "[{}]", "[[{}]]")
    missing = sorted(name for name in _fields(AssignmentSpec, set()) if not any(f.format(name) in DOC for f in forms))
    assert missing == []
