"""The placeholder templates used by the webhook provider."""

from __future__ import annotations

import pytest

from acteon.providers._templates import (
    MAX_BODY_DEPTH,
    MAX_PATH_SEGMENTS,
    MAX_TEMPLATE_CHARS,
    MissingValue,
    StringTemplate,
    TemplateError,
    compile_body,
    render_body,
    template_context,
)

from .conftest import make_action

CONTEXT = template_context(
    make_action({"user": {"name": "Ada", "tags": ["a", "b"]}, "n": 3, "none": None}, metadata={"env": "prod"})
)


@pytest.mark.parametrize(
    ("source", "rendered"),
    [
        ("plain", "plain"),
        ("{{payload.user.name}}", "Ada"),
        ("{{ payload.user.tags.1 }}!", "b!"),
        ("n={{ payload.n }}", "n=3"),
        ("[{{ payload.none }}]", "[]"),
        ("{{ payload.user.tags }}", '["a","b"]'),
        ("{{ metadata.env }}/{{ action.metadata.env }}", "prod/prod"),
        ("{{ action.namespace }}:{{ action.tenant }}", "notifications:tenant-1"),
        ("{ not a placeholder }", "{ not a placeholder }"),
    ],
)
def test_render_text(source: str, rendered: str) -> None:
    assert StringTemplate.compile(source).render(CONTEXT) == rendered


def test_whole_placeholder_keeps_type() -> None:
    assert StringTemplate.compile("{{ payload.n }}").render_value(CONTEXT) == 3
    assert StringTemplate.compile(" {{ payload.user }} ").render_value(CONTEXT) == {
        "name": "Ada",
        "tags": ["a", "b"],
    }
    assert StringTemplate.compile("x{{ payload.n }}").render_value(CONTEXT) == "x3"


def test_body_keys_are_literal() -> None:
    compiled = compile_body({"{{ payload.n }}": "{{ payload.n }}", "list": [1, "{{ payload.none }}"]})
    assert render_body(compiled, CONTEXT) == {"{{ payload.n }}": 3, "list": [1, None]}


@pytest.mark.parametrize(
    "path", ["payload.missing", "payload.user.tags.5", "payload.user.name.first", "payload.user.tags.x"]
)
def test_missing_values(path: str) -> None:
    with pytest.raises(MissingValue, match=path.replace(".", r"\.")):
        StringTemplate.compile("{{ " + path + " }}").render(CONTEXT)


@pytest.mark.parametrize(
    "source",
    [
        "{{ payload.x + 1 }}",
        "{{ payload['x'] }}",
        "{{ payload.x() }}",
        "{{ }}",
        "{{ env.HOME }}",
        "{{ action.secret }}",
        "{{ " + ".".join(["payload"] + ["a"] * MAX_PATH_SEGMENTS) + " }}",
        "x" * (MAX_TEMPLATE_CHARS + 1),
    ],
)
def test_rejected_templates(source: str) -> None:
    with pytest.raises(TemplateError):
        StringTemplate.compile(source)


def test_body_depth_is_bounded() -> None:
    deep: object = "leaf"
    for _ in range(MAX_BODY_DEPTH + 2):
        deep = [deep]
    with pytest.raises(TemplateError, match="nested"):
        compile_body(deep)
