"""Payload templates (workflows.md §3.7, §14 scenarios 2-9; DECISIONS D18 bounded expansion)."""

from __future__ import annotations

from typing import Any

import pytest

from acteon.chains._json import compact_json, format_float, render_inline, strict_equal
from acteon.chains._templates import (
    MAX_RENDERED_CHARS,
    MAX_TEMPLATE_DEPTH,
    StepView,
    TemplateContext,
    TemplateRenderError,
    check_template,
    render,
)

ORIGIN = {
    "id": "act-1", "namespace": "ns", "tenant": "t1", "provider": "p", "action_type": "research",
    "payload": {"limit": 10, "q": "rust", "items": ["x", "y"], "ratio": 0.5, "flag": True, "none": None},
    "metadata": {"team": "ops"},
}


def ctx(prev: Any = None, steps: dict[str, Any] | None = None, index: int = 1, chain_id: str = "c-1",
        prev_view: StepView | None = None) -> TemplateContext:
    views = {name: StepView(True, body, None) for name, body in (steps or {}).items()}
    return TemplateContext(
        origin=ORIGIN,
        prev=prev_view if prev_view is not None else (None if prev is None else StepView(True, prev, None)),
        step_lookup=views.get,
        chain_id=chain_id,
        step_index=index,
    )


def test_type_preserving_whole_value_and_inline_text() -> None:  # scenario 2
    template = {"n": "{{origin.payload.limit}}", "s": "n={{origin.payload.limit}} q={{origin.payload.q}}"}
    assert render(template, ctx()) == {"n": 10, "s": "n=10 q=rust"}


def test_whole_value_keeps_every_json_type() -> None:
    template = {"f": "{{origin.payload.ratio}}", "b": "{{origin.payload.flag}}", "l": "{{origin.payload.items}}",
                "z": "{{origin.payload.none}}", "o": " {{origin.payload}} "}
    out = render(template, ctx())
    assert out["f"] == 0.5 and out["b"] is True and out["l"] == ["x", "y"] and out["z"] is None
    assert out["o"] == ORIGIN["payload"]


def test_missing_paths_render_null() -> None:  # scenario 3
    assert render({"a": "{{origin.payload.nope}}", "b": "x={{origin.payload.nope}}"}, ctx()) == {"a": None, "b": "x=null"}


def test_objects_inline_are_compact_sorted_json() -> None:  # scenario 4
    prev = {"b": 2, "a": 1}
    assert render("{{prev.body}}", ctx(prev)) == prev
    assert render("got {{prev.body}}", ctx(prev)) == 'got {"a":1,"b":2}'


def test_array_index_in_templates() -> None:  # scenario 5
    prev = {"items": ["x", "y"]}
    assert render("{{prev.body.items.1}}", ctx(prev)) == "y"
    assert render("{{prev.body.items.9}}", ctx(prev)) is None
    assert render("{{prev.body.items.+1}}", ctx(prev)) == "y"  # Rust's parser takes a leading +
    assert render("{{prev.body.items.-1}}", ctx(prev)) is None
    assert render("{{prev.body.items. 1}}", ctx(prev)) is None  # int() would take " 1"; upstream does not


def test_whitespace_inside_braces_is_not_trimmed() -> None:  # scenario 6
    assert render("{{ origin.tenant }}", ctx()) is None
    assert render("  {{origin.tenant}}  ", ctx()) == "t1"  # around the braces it is


def test_step_index_and_chain_id() -> None:  # scenario 7
    assert render({"i": "{{step_index}}", "c": "{{chain_id}}"}, ctx(index=2, chain_id="c-42")) == {"i": 2, "c": "c-42"}


def test_prev_at_first_step_and_unrun_steps_are_null() -> None:  # scenario 9
    assert render("{{prev.body}}", ctx(None, index=0)) is None
    assert render("{{steps.email.body}}", ctx()) is None
    assert render("{{steps.search.body.hits}}", ctx(steps={"search": {"hits": 3}})) == 3


def test_origin_fields_and_metadata() -> None:
    c = ctx()
    assert render("{{origin.namespace}}/{{origin.tenant}}/{{origin.action_type}}/{{origin.provider}}/{{origin.id}}",
                  c) == "ns/t1/research/p/act-1"
    assert render("{{origin.tenant.anything}}", c) == "t1"  # later segments are ignored
    assert render("{{origin.metadata.team}}", c) == "ops"
    assert render("{{origin.metadata.nope}}", c) is None
    assert render("{{origin.metadata}}", c) == {"team": "ops"}
    assert render("{{unknown.root}}", c) is None
    assert render("{{origin}}", c) is None


def test_prev_success_and_error_are_readable() -> None:
    failed = StepView(False, None, "boom")
    assert render({"ok": "{{prev.success}}", "e": "{{prev.error}}", "b": "{{prev.response_body}}"},
                  ctx(prev_view=failed)) == {"ok": False, "e": "boom", "b": None}


def test_keys_and_non_strings_are_untouched() -> None:
    template = {"{{origin.tenant}}": [1, 2.5, None, True, "{{origin.tenant}}"]}
    assert render(template, ctx()) == {"{{origin.tenant}}": [1, 2.5, None, True, "t1"]}


def test_unterminated_placeholder_stays_literal() -> None:
    assert render("a {{origin.tenant}} b {{origin.tenant", ctx()) == "a t1 b {{origin.tenant"


def test_expansion_is_one_pass() -> None:
    # Upstream re-scans substituted text, so a value containing a placeholder expands
    # again (and one that expands to itself loops forever); D18: never.
    prev = {"text": "{{prev.body.text}}", "other": "{{origin.tenant}}"}
    assert render("x {{prev.body.text}} y", ctx(prev)) == "x {{prev.body.text}} y"
    assert render("{{prev.body.other}}!", ctx(prev)) == "{{origin.tenant}}!"


def test_rendered_size_is_bounded() -> None:
    big = "x" * (MAX_RENDERED_CHARS // 2 + 1)
    with pytest.raises(TemplateRenderError, match="characters"):
        render("{{prev.body}} {{prev.body}}", ctx(big))


def test_depth_is_bounded() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_TEMPLATE_DEPTH + 1):
        deep = {"a": deep}
    with pytest.raises(TemplateRenderError, match="deeper"):
        render(deep, ctx())
    assert any("deeper" in p for p in check_template(deep, frozenset()))


@pytest.mark.parametrize("template,problem", [
    ("{{ origin.tenant }}", "spaces inside the braces"),
    ("{{orgin.payload}}", "unknown template root `orgin`"),
    ("{{origin.payloads}}", "unknown origin field `payloads`"),
    ("{{steps.ghost.body}}", "unknown step `ghost`"),
    ("{{steps.a.bodee}}", "steps.NAME.body"),
    ("{{prev.result}}", "prev.body"),
    ("{{}}", "empty placeholder"),
])
def test_load_time_template_checks(template: str, problem: str) -> None:
    problems = check_template({"x": [template]}, frozenset({"a"}))
    assert len(problems) == 1 and problem in problems[0] and "`$.x[0]`" in problems[0]


def test_load_time_checks_accept_every_documented_expression() -> None:
    ok = ["{{origin.payload}}", "{{origin.payload.a.0}}", "{{origin.metadata.k}}", "{{origin.id}}",
          "{{prev.body.x}}", "{{prev.success}}", "{{steps.a.body}}", "{{steps.a.error}}", "{{chain_id}}",
          "{{step_index}}", "no placeholders", "half {{ open"]
    assert check_template(ok, frozenset({"a"})) == []


@pytest.mark.parametrize("value,text", [
    (1.0, "1.0"), (1e21, "1e21"), (1.5e-7, "1.5e-7"), (0.00001, "0.00001"), (1e16, "1e16"),
    (123.456, "123.456"), (-2.5, "-2.5"), (0.0, "0.0"), (100.0, "100.0"), (9.99e-6, "9.99e-6"),
    (1.2345678901234567e19, "1.2345678901234567e19"),
])
def test_float_rendering_matches_upstream(value: float, text: str) -> None:
    assert format_float(value) == text
    assert render_inline(value) == text


def test_inline_rendering_of_scalars_and_containers() -> None:
    assert [render_inline(v) for v in (None, True, False, 7, "s")] == ["null", "true", "false", "7", "s"]
    assert compact_json({"b": [1.0, None], "a": "é"}) == '{"a":"é","b":[1.0,null]}'


def test_strict_equality() -> None:
    assert strict_equal(1, 1) and strict_equal(1.0, 1.0) and strict_equal("a", "a") and strict_equal(None, None)
    assert not strict_equal(1, 1.0)
    assert not strict_equal(True, 1)
    assert not strict_equal(False, 0)
    assert strict_equal([1, {"a": 2}], [1, {"a": 2}])
    assert not strict_equal([1, {"a": 2}], [1, {"a": 2.0}])
    assert not strict_equal({"a": 1}, {"a": 1, "b": 2})
    assert not strict_equal(None, 0)
