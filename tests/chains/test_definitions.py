"""Chain definitions: parsing, validation at load and registration (workflows.md §3.1, §3.2, §4.1;
§14 scenarios 15-17), sub-chain graph checks, config files, and branch conditions (§3.8, 10-14)."""

from __future__ import annotations

from typing import Any

import pytest

from acteon import AsyncGateway, ConfigurationError, Gateway
from acteon.chains import ChainConfig, ChainConfigError
from acteon.chains._branching import matches, next_step
from acteon.chains._model import BranchCondition
from acteon.chains._state import StepResult
from acteon.chains._validate import check_definition, check_sub_chain_graph, validate
from tests.chains._helpers import step

pytestmark = pytest.mark.anyio


def chain(name: str, *steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "steps": list(steps), **extra}


def cfg(*steps: dict[str, Any], name: str = "c", **extra: Any) -> ChainConfig:
    return ChainConfig.from_dict(chain(name, *steps, **extra))


# ----------------------------------------------------------------------------- parsing


def test_round_trip_of_every_field() -> None:
    data = chain(
        "full",
        step("a", on_failure="skip", delay_seconds=5, default_next="c",
             branches=[{"field": "body.x", "operator": "gte", "value": 3, "target": "b"},
                       {"field": "body.y", "operator": "eq", "value": None, "target": "c"}],
             retry={"max_retries": 2, "backoff_ms": 10, "strategy": "linear", "jitter_ms": 5}),
        {"name": "b", "parallel": {"steps": [step("b1"), step("b2")], "join": "any", "on_failure": "best_effort",
                                   "timeout_seconds": 9, "max_concurrency": 1}},
        {"name": "c", "sub_chain": "other"},
        {"name": "d", "timer": {"duration_seconds": 60}},
        {"name": "e", "wait_for_signal": {"signal_name": "go", "timeout_seconds": 5, "on_timeout": "a"}},
        on_failure="abort_no_dlq", timeout_seconds=300, on_cancel={"provider": "slack", "action_type": "notify"},
        version=3,
    )
    parsed = ChainConfig.from_dict(data)
    assert ChainConfig.from_dict(parsed.to_dict()) == parsed
    assert [s.kind for s in parsed.steps] == ["provider", "parallel", "sub_chain", "timer", "wait_for_signal"]
    assert parsed.steps[0].branches[1].has_value and parsed.steps[0].branches[1].value is None
    assert parsed.version == 3 and parsed.on_cancel is not None and parsed.on_cancel.provider == "slack"


def test_missing_payload_template_defaults_to_empty_object() -> None:
    parsed = ChainConfig.from_dict({"name": "c", "steps": [{"name": "a", "provider": "p", "action_type": "t"}]})
    assert parsed.steps[0].payload_template == {}


@pytest.mark.parametrize("data,fragment", [
    ({"steps": []}, "`name` is required"),
    ({"name": "c"}, "`steps` is required"),
    ({"name": "c", "steps": [], "color": "red"}, "unknown key(s) 'color'"),
    ({"name": "c", "steps": [], "on_failure": "explode"}, "`on_failure` must be one of abort, abort_no_dlq"),
    ({"name": "c", "steps": [{"name": "a", "on_failure": "retry"}]}, "chain 'c' step 'a': `on_failure`"),
    ({"name": "c", "steps": [{"name": "a", "delay_seconds": "5"}]}, "`delay_seconds` must be a number"),
    ({"name": "c", "steps": [{"name": "a", "delay_seconds": -1}]}, "`delay_seconds` must be >= 0"),
    ({"name": "c", "steps": [{"name": "a", "branches": [{"field": "body.x", "operator": "like", "target": "a"}]}]},
     "`operator` must be one of eq, neq"),
    ({"name": "c", "steps": [{"name": "a", "branches": [{"field": "severity", "target": "a"}]}]},
     "`field` must be `success`, `body` or `body.<path>`"),
    ({"name": "c", "steps": [{"name": "a", "branches": [{"field": "body"}]}]}, "`target` is required"),
    ({"name": "c", "steps": ["a"]}, "steps[0]: expected a table"),
    ({"name": "c", "steps": [{"name": "a", "retry": {"backoff_ms": 5}}]}, "retry: `max_retries` is required"),
    ({"name": "c", "steps": [{"name": "a", "timer": {"until": "tomorrow"}}]}, "`until` must be an RFC 3339"),
    ({"name": "c", "timeout_seconds": 0, "steps": []}, "`timeout_seconds` must be >= 1"),
])
def test_parse_errors_name_the_place(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ChainConfigError) as info:
        ChainConfig.from_dict(data)
    assert fragment in str(info.value)
    assert isinstance(info.value, ConfigurationError)
    assert str(info.value).startswith("chain error: ")


# ----------------------------------------------------------------------------- validation


def test_cycle_rejected_with_upstream_message() -> None:  # scenario 15
    c = cfg(step("a", default_next="b"), step("b", default_next="a"), name="cyc")
    with pytest.raises(ChainConfigError) as info:
        check_definition(c)
    assert str(info.value) == (
        "chain error: invalid chain configuration 'cyc': "
        "cycle detected: step `a` is reachable from itself via branches; "
        "cycle detected: step `b` is reachable from itself via branches"
    )


def test_cycle_through_sequential_fall_through() -> None:
    # b (no branching) falls through to c, whose branch returns to b.
    c = cfg(step("a"), step("b"), step("c", branches=[{"field": "success", "operator": "eq", "value": True,
                                                       "target": "b"}]))
    assert validate(c) == ["cycle detected: step `c` is reachable from itself via branches"]


def test_bad_targets() -> None:  # scenario 16
    c = cfg(step("a", branches=[{"field": "success", "operator": "eq", "value": True, "target": "ghost"}],
                 default_next="nowhere"), step("b"))
    assert validate(c) == [
        "step `a` branches to non-existent step `ghost`",
        "step `a` has default_next targeting non-existent step `nowhere`",
    ]


def test_linear_chain_with_duplicate_names_is_accepted() -> None:  # scenario 17
    check_definition(cfg(step("a"), step("a")))
    with pytest.raises(ChainConfigError, match="duplicate step name: `a`"):
        check_definition(cfg(step("a", default_next="b"), step("a"), step("b")))


def test_head_structure_messages_in_order() -> None:
    c = cfg(
        {"name": "s", "provider": "p", "sub_chain": "x"},
        {"name": "g", "provider": "p", "parallel": {"steps": []}},
        {"name": "h", "parallel": {"steps": [
            {"name": "n", "parallel": {"steps": [step("z")]}},
            {"name": "sc", "sub_chain": "x"},
            step("br", default_next="s"),
            step("dup"), step("dup"), step("s"),
        ], "max_concurrency": 0}},
        {"name": "t", "timer": {}, "provider": "p"},
        {"name": "t0", "timer": {"duration_seconds": 0}},
        {"name": "w", "wait_for_signal": {"signal_name": "", "on_timeout": "ghost"}},
        {"name": "r", "sub_chain": "x", "retry": {"max_retries": 1}},
    )
    assert validate(c) == [
        "step `s` has both `sub_chain` and `provider` set; they are mutually exclusive",
        "step `g` has both `parallel` and `provider` set; they are mutually exclusive",
        "parallel step `g` must have at least one sub-step",
        "nested parallel not allowed: sub-step `n` in parallel step `h`",
        "sub-chains not allowed inside parallel groups: sub-step `sc` in parallel step `h`",
        "branches not allowed on parallel sub-steps: sub-step `br` in parallel step `h`",
        "duplicate sub-step name `dup` in parallel step `h`",
        "parallel sub-step `s` conflicts with top-level step name in chain",
        "parallel step `h`: `max_concurrency` must be >= 1",
        "step `t` sets multiple step kinds (provider, timer); they are mutually exclusive",
        "timer step `t` must set exactly one of `duration_seconds` or `until`",
        "timer step `t0`: `duration_seconds` must be >= 1",
        "wait_for_signal step `w` must set a non-empty `signal_name`",
        "wait_for_signal step `w` sets `on_timeout` without `timeout_seconds`",
        "wait_for_signal step `w` has on_timeout targeting non-existent step `ghost`",
        "step `r` has a retry policy on a sub-chain step; retry is only supported on provider steps",
    ]


def test_template_problems_are_validation_messages() -> None:
    c = cfg(step("a", payload_template={"x": "{{steps.ghost.body}}"}))
    assert validate(c) == ["step `a` payload_template at `$.x`: `{{steps.ghost.body}}` references unknown step `ghost`"]


def test_sub_chain_graph() -> None:
    defs = {n: cfg({"name": "s", "sub_chain": sub}, name=n) for n, sub in (("a", "b"), ("b", "c"), ("c", "a"))}
    with pytest.raises(ChainConfigError, match="sub-chain cycle detected: a -> b -> c -> a"):
        check_sub_chain_graph(defs)
    with pytest.raises(ChainConfigError, match="chain `a` references unknown sub-chain `zz`"):
        check_sub_chain_graph({"a": cfg({"name": "s", "sub_chain": "zz"}, name="a")})
    check_sub_chain_graph({"a": cfg({"name": "s", "sub_chain": "b"}, name="a"), "b": cfg(step("x"), name="b")})


# ----------------------------------------------------------------------------- gateway loading


def test_gateway_rejects_invalid_definitions_at_construction() -> None:
    with pytest.raises(ChainConfigError, match="invalid chain configuration 'cyc'"):
        AsyncGateway(chains=[chain("cyc", step("a", default_next="b"), step("b", default_next="a"))])
    with pytest.raises(ChainConfigError, match="references unknown sub-chain `missing`"):
        AsyncGateway(chains=[chain("p", {"name": "s", "sub_chain": "missing"})])
    with pytest.raises(ChainConfigError, match="defined twice"):
        AsyncGateway(chains=[chain("x", step("a")), chain("x", step("b"))])
    with pytest.raises(ConfigurationError, match=r"\[chains\]: unknown key"):
        AsyncGateway(chains={"definitions": [], "bogus": 1})


async def test_register_chain_validates_and_keeps_the_previous_definition() -> None:
    gw = AsyncGateway(chains=[chain("c", step("a"))], background=False)
    with pytest.raises(ChainConfigError, match="cycle detected"):
        gw.register_chain(chain("c", step("a", default_next="a")))
    assert [s.name for s in gw.chain_definitions()[0].steps] == ["a"]
    updated = gw.register_chain(chain("c", step("a"), step("b")))
    assert updated.version == 2 and len(gw.chain_definitions()[0].steps) == 2
    assert gw.register_chain(chain("c", step("a"), version=7)).version == 7
    with pytest.raises(ChainConfigError, match="unknown sub-chain `nope`"):
        gw.register_chain(chain("parent", {"name": "s", "sub_chain": "nope"}))
    gw.register_chain(chain("parent", {"name": "s", "sub_chain": "c"}))
    with pytest.raises(ChainConfigError, match="sub-chain cycle detected: c -> parent -> c"):
        gw.register_chain(chain("c", {"name": "back", "sub_chain": "parent"}))
    assert sorted(d.name for d in gw.chain_definitions()) == ["c", "parent"]


def test_chains_from_a_toml_config(tmp_path: Any) -> None:
    path = tmp_path / "acteon.toml"
    path.write_text("""
[chains]
max_concurrent_advances = 4

[[chains.definitions]]
name = "incident"
timeout_seconds = 600

[[chains.definitions.steps]]
name = "check"
provider = "log"
action_type = "check"
payload_template = { id = "{{origin.payload.id}}" }

[[chains.definitions.steps.branches]]
field = "body.severity"
operator = "eq"
value = "high"
target = "page"

[[chains.definitions.steps]]
name = "page"

[chains.definitions.steps.parallel]
join = "any"

[[chains.definitions.steps.parallel.steps]]
name = "pager"
provider = "log"
action_type = "page"
""")
    gw = Gateway.from_config(path)
    try:
        (definition,) = gw.chain_definitions()
        assert definition.name == "incident" and definition.timeout_seconds == 600
        assert definition.steps[1].parallel is not None and definition.steps[1].parallel.join == "any"
        engine = gw.async_gateway._chains
        assert engine.max_concurrent_advances == 4 and engine.completed_ttl == 604800
    finally:
        gw.close()


# ----------------------------------------------------------------------------- branches


def result(body: Any = None, success: bool = True) -> StepResult:
    return StepResult("s", success, body, None if success else "err")


def cond(field: str, operator: str, *value: Any) -> BranchCondition:
    return BranchCondition(field, operator, "t", value[0] if value else None, bool(value))


def test_first_matching_branch_wins_then_default_then_sequence() -> None:  # scenarios 10-12
    c = cfg(step("check", branches=[{"field": "body.severity", "operator": "eq", "value": "high", "target": "escalate"},
                                    {"field": "body.severity", "operator": "eq", "value": "low", "target": "warn"}],
                 default_next="notify"),
            step("escalate"), step("warn"), step("notify"))
    assert next_step(c, 0, result({"severity": "high"})) == 1
    assert next_step(c, 0, result({"severity": "low"})) == 2
    assert next_step(c, 0, result({"severity": "medium"})) == 3
    # Fall-through after a target: escalate has no branching config, so warn, then notify.
    assert next_step(c, 1, result()) == 2 and next_step(c, 2, result()) == 3 and next_step(c, 3, result()) is None
    no_default = cfg(step("check", branches=[{"field": "body.severity", "operator": "eq", "value": "high",
                                               "target": "warn"}]), step("escalate"), step("warn"))
    assert next_step(no_default, 0, result({"severity": "medium"})) == 1


def test_null_and_type_strict_comparisons() -> None:  # scenario 13 (with D18)
    assert matches(cond("body.x", "eq", None), result({"x": None}))  # D18: value null matches null
    assert matches(cond("body.x", "eq", None), result({}))
    assert not matches(cond("body.x", "eq", None), result({"x": 0}))
    assert not matches(cond("body.x", "eq"), result({"x": None}))  # no value at all: never
    assert not matches(cond("body.x", "neq"), result({"x": 1}))
    assert not matches(cond("body.x", "exists"), result({}))
    assert not matches(cond("body.x", "exists"), result({"x": None}))
    assert matches(cond("body.x", "exists"), result({"x": False}))
    assert matches(cond("body.level", "neq", "info"), result({}))
    assert not matches(cond("body.n", "eq", 1.0), result({"n": 1}))
    assert matches(cond("body.n", "neq", 1.0), result({"n": 1}))
    assert not matches(cond("body.flag", "eq", 1), result({"flag": True}))


def test_contains() -> None:  # scenario 14
    assert matches(cond("body.message", "contains", "timeout"), result({"message": "connection timeout after 30s"}))
    assert not matches(cond("body.code", "contains", "50"), result({"code": 504}))
    assert not matches(cond("body.message", "contains", 5), result({"message": "5"}))


def test_numeric_and_string_ordering() -> None:
    body = {"n": 5, "f": 2.5, "s": "beta", "nan": float("nan"), "b": True}
    assert matches(cond("body.n", "gt", 4), result(body)) and not matches(cond("body.n", "gt", 5), result(body))
    assert matches(cond("body.n", "gte", 5.0), result(body)) and matches(cond("body.f", "lt", 3), result(body))
    assert matches(cond("body.f", "lte", 2.5), result(body))
    assert matches(cond("body.s", "gt", "alpha"), result(body)) and not matches(cond("body.s", "lt", "alpha"),
                                                                                  result(body))
    assert not matches(cond("body.s", "gt", 1), result(body))
    assert not matches(cond("body.nan", "lt", 1), result(body)) and not matches(cond("body.nan", "gte", 1),
                                                                                 result(body))
    assert not matches(cond("body.b", "gt", 0), result(body))  # a bool is not a number
    assert not matches(cond("body.n", "gt"), result(body))


def test_branch_fields() -> None:
    failed = result(None, success=False)
    assert matches(cond("success", "eq", False), failed)
    assert matches(cond("body", "eq", None), failed)
    assert not matches(cond("body.items.1", "eq", "y"), result({"items": ["x", "y"]}))  # no array index (scenario 5)
    assert matches(cond("body.a.b", "eq", 1), result({"a": {"b": 1}}))
