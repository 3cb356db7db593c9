"""State lookups (§8.6), event predicates (§8.7), semantic match (§8.8), WASM (§8.9), time (§8.10)."""

from __future__ import annotations

from typing import Any

import pytest

from acteon import RuleEvaluationError, UsageError
from acteon.rules import MockState, ir
from acteon.rules._errors import EvalError
from acteon.state.memory import MemoryStateStore

from ._helpers import NOW, action, expr_set, one_rule, value_of

KEY = "ns:t1:{kind}:{id}"


class SyncStore:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.reads: list[str] = []

    def get(self, key: str) -> str | None:
        self.reads.append(key)
        return self.values.get(key)


class AsyncStore(SyncStore):
    async def get(self, key: str) -> str | None:  # type: ignore[override]
        return super().get(key)


class FailingStore:
    async def get(self, key: str) -> str | None:
        raise RuntimeError("connection refused")


def k(kind: str, ident: str) -> str:
    return KEY.format(kind=kind, id=ident)


# --------------------------------------------------------------------------- state lookups


def test_state_get_counter_time_since() -> None:
    state = {
        k("state", "s"): "raw",
        k("counter", "c"): "-12",
        k("state", "seen"): "2026-01-15T11:59:00.9Z",
        k("state", "future"): "2026-01-15T12:00:30Z",
    }
    store = SyncStore(state)
    assert value_of(ir.StateGet("s"), state=store) == "raw"
    assert value_of(ir.StateGet("absent"), state=store) is None
    assert value_of(ir.StateCounter("c"), state=store) == -12
    assert value_of(ir.StateCounter("absent"), state=store) == 0
    assert value_of(ir.StateTimeSince("seen"), state=store, now=NOW) == 59  # truncated toward zero
    assert value_of(ir.StateTimeSince("future"), state=store, now=NOW) == -30
    assert value_of(ir.StateTimeSince("absent"), state=store, now=NOW) == 2**63 - 1
    assert k("counter", "c") in store.reads


@pytest.mark.parametrize(
    ("node", "stored", "message"),
    [
        (
            ir.StateCounter("x"),
            "abc",
            "state access error: counter is not an integer: invalid digit found in string",
        ),
        (ir.StateCounter("x"), "1.5", "state access error: counter is not an integer"),
        (
            ir.StateTimeSince("x"),
            "yesterday",
            "state access error: cannot parse stored timestamp 'yesterday': ",
        ),
    ],
)
def test_state_value_errors(node: ir.Expr, stored: str, message: str) -> None:
    kind = "counter" if isinstance(node, ir.StateCounter) else "state"
    with pytest.raises(EvalError) as info:
        value_of(node, state={k(kind, "x"): stored})
    assert str(info.value).startswith(message)


def test_state_seen_yaml_predicate() -> None:
    rules = one_rule("{state_seen: last, within_seconds: 60}")
    assert rules.evaluate(action(), now=NOW, state={"last": "2026-01-15T11:59:30Z"}).kind == "deny"
    assert rules.evaluate(action(), now=NOW, state={"last": "2026-01-15T11:58:00Z"}).kind == "allow"
    assert rules.evaluate(action(), now=NOW).kind == "allow"
    always = one_rule("{state_seen: last}")
    assert always.evaluate(action(), now=NOW, state={"last": "2000-01-01T00:00:00Z"}).kind == "deny"


def test_within_seconds_overflow_is_a_load_error() -> None:
    from acteon import RuleLoadError

    with pytest.raises(RuleLoadError, match=r"parse error: within_seconds overflow"):
        one_rule("{state_seen: k, within_seconds: 9223372036854775808}")


def test_dict_state_is_a_mock_overlay_matching_key_or_id() -> None:
    rules = one_rule("{state_counter: hits, gt: 10}")
    assert rules.evaluate(action(), state={"hits": "11"}).kind == "deny"
    assert rules.evaluate(action(), state={k("counter", "hits"): "11"}).kind == "deny"
    assert rules.evaluate(action(), state={"other:t1:counter:hits": "11"}).kind == "allow"


@pytest.mark.anyio
async def test_async_store_and_mock_overlay() -> None:
    store = MemoryStateStore()
    await store.set(k("counter", "hits"), "11")
    rules = one_rule("{all: [{state_counter: hits, gt: 10}, {state_counter: other, eq: 3}]}")
    assert (await rules.aevaluate(action(), state=store)).kind == "allow"
    overlay = MockState({"other": "3"}, fallback=store)
    assert (await rules.aevaluate(action(), state=overlay)).kind == "deny"
    trace = await rules.aevaluate_with_trace(action(), state=overlay)
    assert trace.verdict == "deny"
    assert trace.context.accessed_state_keys == ["counter:hits", "counter:other"]


@pytest.mark.anyio
async def test_store_failure_is_a_state_access_error() -> None:
    rules = one_rule("{state_counter: hits, gt: 10}")
    with pytest.raises(RuleEvaluationError) as info:
        await rules.aevaluate(action(), state=FailingStore())
    assert str(info.value).startswith("state access error: connection refused")
    assert info.value.rule == "r" and info.value.field == 'StateCounter("hits")'
    assert isinstance(info.value.__cause__, EvalError)


def test_sync_evaluate_with_async_store_runs_its_own_loop() -> None:
    rules = one_rule("{state_counter: hits, gt: 10}")
    store = AsyncStore({k("counter", "hits"): "50"})
    assert rules.evaluate(action(), state=store).kind == "deny"
    assert rules.evaluate_with_trace(action(), state=store).verdict == "deny"


@pytest.mark.anyio
async def test_sync_evaluate_with_async_store_inside_a_loop_is_refused() -> None:
    rules = one_rule("{state_counter: hits, gt: 10}")
    with pytest.raises(UsageError, match=r"aevaluate"):
        rules.evaluate(action(), state=AsyncStore({}))
    # A rule set that never reads state is fine from async code with the sync API.
    assert one_rule("{all: []}").evaluate(action(), state=AsyncStore({})).kind == "deny"


@pytest.mark.anyio
async def test_state_is_read_lazily_and_only_when_reached() -> None:
    rules = one_rule("{any: [{field: action.action_type, eq: send_email}, {state_counter: hits, gt: 1}]}")
    store = AsyncStore({})
    assert (await rules.aevaluate(action(), state=store)).kind == "deny"
    assert store.reads == []


# --------------------------------------------------------------------------- events


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (None, False),
        ('{"state": "firing", "fingerprint": "f"}', True),
        ('{"state": "resolved"}', False),
        ('{"state": "closed"}', False),
        ('{"state": 5}', True),
        ("not json", True),
    ],
)
def test_has_active_event(stored: str | None, expected: bool) -> None:
    state = {} if stored is None else {k("active_events", "outage"): stored}
    assert value_of(ir.HasActiveEvent("outage"), state=state) is expected


def test_has_active_event_label() -> None:
    node = ir.HasActiveEvent("outage", ir.path("action.payload.cluster"))
    state = {k("active_events", "outage:eu"): "{}", k("active_events", "outage:5"): "{}"}
    assert value_of(node, action(payload={"cluster": "eu"}), state=state) is True
    assert value_of(node, action(payload={"cluster": 5}), state=state) is True
    assert value_of(node, action(payload={"cluster": "us"}), state=state) is False
    # A Null label means no suffix.
    assert value_of(node, action(payload={}), state={k("active_events", "outage"): "{}"}) is True


def test_inhibit_if_active_yaml() -> None:
    rules = one_rule(
        "{inhibit_if_active: cluster_down, label_field: action.metadata.cluster}", "{type: suppress}"
    )
    state = {k("active_events", "cluster_down:c1"): '{"state": "firing"}'}
    assert rules.evaluate(action(metadata={"cluster": "c1"}), state=state).kind == "suppress"
    assert rules.evaluate(action(metadata={"cluster": "c2"}), state=state).kind == "allow"


def test_event_state_lookups() -> None:
    fp = ir.path("action.fingerprint")
    state = {k("event_state", "fp1"): '{"state": "acked"}', k("event_state", "fp2"): "open"}
    assert value_of(ir.GetEventState(fp), action(fingerprint="fp1"), state=state) == "acked"
    assert value_of(ir.GetEventState(fp), action(fingerprint="fp2"), state=state) == "open"
    assert value_of(ir.GetEventState(fp), action(fingerprint="zz"), state=state) is None
    assert value_of(ir.GetEventState(fp), action(), state=state) is None
    assert value_of(ir.EventInState(fp, "acked"), action(fingerprint="fp1"), state=state) is True
    assert value_of(ir.EventInState(fp, "open"), action(fingerprint="fp1"), state=state) is False
    assert value_of(ir.GetEventState(ir.Int(7)), state={k("event_state", "7"): "x"}) == "x"


# --------------------------------------------------------------------------- semantic match and wasm


class Embedding:
    def __init__(self, value: float) -> None:
        self.value = value
        self.calls: list[tuple[str, str]] = []

    def similarity(self, text: str, topic: str) -> float:
        self.calls.append((text, topic))
        return self.value


class AsyncEmbedding(Embedding):
    async def similarity(self, text: str, topic: str) -> float:  # type: ignore[override]
        return super().similarity(text, topic)


def test_semantic_match_text_sources() -> None:
    emb = Embedding(0.9)
    node = ir.SemanticMatch("billing", 0.8)
    assert value_of(node, action(payload={"b": "é", "a": 1}), embedding=emb) is True
    assert emb.calls[-1] == ('{"a":1,"b":"é"}', "billing")
    with_field = ir.SemanticMatch("billing", 0.95, ir.path("action.payload.n"))
    assert value_of(with_field, action(payload={"n": 12}), embedding=emb) is False
    assert emb.calls[-1] == ("12", "billing")
    calls = len(emb.calls)
    assert value_of(with_field, action(payload={"n": ""}), embedding=emb) is False
    assert value_of(with_field, action(payload={}), embedding=emb) is False
    assert len(emb.calls) == calls  # empty / null text: no embedding call


def test_semantic_match_requires_embedding_support() -> None:
    with pytest.raises(EvalError, match=r"^evaluation error: semantic_match requires embedding support$"):
        value_of(ir.SemanticMatch("x"), embedding=None)


@pytest.mark.anyio
async def test_async_embedding_and_trace_details() -> None:
    rules = one_rule("{semantic_match: Infra, threshold: 0.5, text_field: action.payload.m}")
    emb = AsyncEmbedding(0.7)
    act = action(payload={"m": "db down"})
    assert (await rules.aevaluate(act, embedding=emb)).kind == "deny"
    trace = await rules.aevaluate_with_trace(act, embedding=emb)
    details = trace.trace[0].semantic_details
    assert details == {"extracted_text": "db down", "topic": "Infra", "similarity": 0.7, "threshold": 0.5}


class Wasm:
    def __init__(self, verdict: bool, fail: bool = False) -> None:
        self.verdict = verdict
        self.fail = fail
        self.seen: list[Any] = []

    def invoke(self, plugin: str, function: str, action_json: Any) -> bool:
        if self.fail:
            raise RuntimeError("trap")
        self.seen.append((plugin, function, action_json["action_type"]))
        return self.verdict


def test_wasm_call() -> None:
    rules = one_rule("{wasm_plugin: filter}")
    runtime = Wasm(True)
    assert rules.evaluate(action(), wasm=runtime).kind == "deny"
    assert runtime.seen == [("filter", "evaluate", "send_email")]
    with pytest.raises(
        RuleEvaluationError, match=r"^evaluation error: WASM plugin 'filter' called but no WASM"
    ):
        rules.evaluate(action())
    with pytest.raises(RuleEvaluationError, match=r"^evaluation error: WASM plugin 'filter' error: trap"):
        rules.evaluate(action(), wasm=Wasm(True, fail=True))


# --------------------------------------------------------------------------- time


def test_time_map() -> None:
    tm = value_of(ir.Ident("time"), now="2026-01-17T23:30:05Z")
    assert tm == {
        "hour": 23,
        "minute": 30,
        "second": 5,
        "day": 17,
        "month": 1,
        "year": 2026,
        "weekday": "Saturday",
        "weekday_num": 6,
        "timestamp": 1768692605,
    }
    local = value_of(ir.Ident("time"), now="2026-01-17T23:30:05Z", timezone="Asia/Tokyo")
    assert (local["day"], local["hour"], local["weekday"], local["weekday_num"]) == (18, 8, "Sunday", 7)
    assert local["timestamp"] == tm["timestamp"]


def test_rule_timezone_overrides_context_timezone() -> None:
    rules = one_rule("{field: time.hour, eq: 9}", timezone='"US/Eastern"')
    assert rules.evaluate(action(), now="2026-01-15T14:00:00Z").kind == "deny"
    assert rules.evaluate(action(), now="2026-01-15T14:00:00Z", timezone="Asia/Tokyo").kind == "deny"
    plain = one_rule("{field: time.hour, eq: 23}")
    assert plain.evaluate(action(), now="2026-01-15T14:00:00Z", timezone="Asia/Tokyo").kind == "deny"
    assert plain.evaluate(action(), now="2026-01-15T14:00:00Z").kind == "allow"


def test_dst_follows_the_tz_database() -> None:
    # 2026-03-08: US spring forward at 02:00 local (07:00 UTC) -> 03:00.
    hour = ir.path("time.hour")
    assert value_of(hour, now="2026-03-08T06:59:00Z", timezone="America/New_York") == 1
    assert value_of(hour, now="2026-03-08T07:00:00Z", timezone="America/New_York") == 3
    # 2026-11-01: fall back, 01:xx happens twice.
    assert value_of(hour, now="2026-11-01T05:30:00Z", timezone="America/New_York") == 1
    assert value_of(hour, now="2026-11-01T06:30:00Z", timezone="America/New_York") == 1


@pytest.mark.parametrize("name", ["us/eastern", "Not/AZone", "", "utc", "EST5EDT "])
def test_invalid_rule_timezone_errors_when_reached(name: str) -> None:
    rules = one_rule("{all: []}", timezone=f'"{name}"')
    with pytest.raises(RuleEvaluationError, match=rf"^invalid timezone: {name}"):
        rules.evaluate(action())
    trace = rules.evaluate_with_trace(action())
    entry = trace.trace[0]
    assert (entry.result, entry.error, entry.evaluation_duration_us) == (
        "error",
        f"invalid timezone: {name}",
        0,
    )


@pytest.mark.parametrize("name", ["US/Eastern", "UTC", "Etc/GMT+5", "Europe/Paris", "EST5EDT"])
def test_valid_timezone_names(name: str) -> None:
    assert one_rule("{field: time.hour, gte: 0}", timezone=f'"{name}"').evaluate(action()).kind == "deny"


def test_unreached_rule_with_bad_timezone_cannot_fail() -> None:
    from acteon.rules import load_rules

    rules = load_rules(
        "rules:\n"
        "  - {name: first, priority: 1, condition: {all: []}, action: {type: allow}}\n"
        "  - {name: bad, priority: 2, timezone: Nope, condition: {all: []}, action: {type: deny}}\n"
    )
    assert rules.evaluate(action()).rule == "first"
    rules.disable_rule("first")
    with pytest.raises(RuleEvaluationError, match=r"invalid timezone: Nope"):
        rules.evaluate(action())


def test_invalid_context_timezone() -> None:
    with pytest.raises(RuleEvaluationError, match=r"^invalid timezone: Mars/Base"):
        one_rule("{all: []}").evaluate(action(), timezone="Mars/Base")


def test_expr_set_helper_works_with_state_nodes() -> None:
    rules = expr_set(ir.Binary(ir.BinaryOp.GT, ir.StateCounter("c"), ir.Int(1)))
    assert rules.evaluate(action(), state={"c": "2"}).kind == "deny"
