"""Weighted / canary routing: the ``weighted_route`` rule action, its split, verdict and dry run."""

from __future__ import annotations

import random
import uuid
from collections import Counter

import pytest

from acteon import ConfigurationError, ProviderNotFoundError, RuleLoadError
from acteon.outcomes import CircuitOpen, DryRun, Executed, Failed, Rerouted
from acteon.resilience import WeightedRouter, hash_point
from acteon.rules import Rule, RuleAction, RuleSet, ir, load_rules
from acteon.testing import FailingProvider, RecordingProvider
from tests.resilience.conftest import gateway, make_action

pytestmark = pytest.mark.anyio

CANARY = """rules:
  - name: canary
    condition: {field: action.action_type, eq: send_email}
    action:
      type: weighted_route
      targets:
        - {provider: email, weight: 90}
        - {provider: email-v2, weight: 10}
"""


def one_rule(action: str) -> RuleSet:
    return load_rules(f"rules:\n  - name: r\n    condition: {{all: []}}\n    action: {action}\n")


# --------------------------------------------------------------------------- the split


def test_hash_split_90_10_within_2_percent() -> None:
    router = WeightedRouter([{"provider": "a", "weight": 90}, {"provider": "b", "weight": 10}])
    ids = [str(uuid.UUID(int=random.Random(7).getrandbits(128) ^ i)) for i in range(10_000)]
    counts = Counter(router.pick(i) for i in ids)
    assert abs(counts["a"] / 10_000 - 0.90) <= 0.02
    assert abs(counts["b"] / 10_000 - 0.10) <= 0.02
    # uuid4 ids, as the Action model generates them
    counts = Counter(router.pick(str(uuid.uuid4())) for _ in range(10_000))
    assert abs(counts["b"] / 10_000 - 0.10) <= 0.02


def test_same_id_same_provider() -> None:
    router = WeightedRouter([{"provider": "a", "weight": 1}, {"provider": "b", "weight": 1}])
    for _ in range(200):
        action_id = str(uuid.uuid4())
        assert len({router.pick(action_id) for _ in range(5)}) == 1
    # stable across router instances (and processes: BLAKE2b, not Python's salted hash())
    assert hash_point("action-1") == hash_point("action-1")
    assert 0 <= hash_point("") < 1
    assert hash_point("action-1") != hash_point("action-2")
    assert hash_point("action-1") == pytest.approx(0.098357, abs=1e-6)  # fixed by the algorithm, not the process


def test_raising_the_first_weight_only_moves_ids_onto_it() -> None:
    before = WeightedRouter([{"provider": "canary", "weight": 10}, {"provider": "stable", "weight": 90}])
    after = WeightedRouter([{"provider": "canary", "weight": 20}, {"provider": "stable", "weight": 80}])
    ids = [f"id-{i}" for i in range(2000)]
    assert all(after.pick(i) == "canary" for i in ids if before.pick(i) == "canary")


def test_random_strategy_split_and_zero_weights() -> None:
    router = WeightedRouter(
        [{"provider": "a", "weight": 90}, {"provider": "off", "weight": 0}, {"provider": "b", "weight": 10}],
        "random")
    rng = random.Random(42)
    counts = Counter(router.pick("same-id", rng) for _ in range(10_000))
    assert counts["off"] == 0
    assert abs(counts["b"] / 10_000 - 0.10) <= 0.02
    assert router.share("a") == 0.9 and router.share("off") == 0 and router.share("zzz") == 0
    # a point at the very end of the line still lands on a real target
    only = WeightedRouter([{"provider": "x", "weight": 1}, {"provider": "y", "weight": 0}], "random")

    class One(random.Random):
        def random(self) -> float:
            return 1.0

    assert only.pick("id", One()) == "x"


# --------------------------------------------------------------------------- loading


def test_yaml_action_is_parsed_and_validated() -> None:
    (rule,) = load_rules(CANARY)
    verdict = rule.verdict()
    assert verdict.kind == "weighted_route"
    assert verdict.targets == [{"provider": "email", "weight": 90}, {"provider": "email-v2", "weight": 10}]
    assert verdict.strategy == "hash"
    assert verdict.to_dict()["verdict"] == "weighted_route"


@pytest.mark.parametrize(
    ("action", "message", "key"),
    [
        ("{type: weighted_route}", "missing field `targets`", "action.targets"),
        ("{type: weighted_route, targets: []}", "targets must be a non-empty list", "action.targets"),
        ("{type: weighted_route, targets: [a]}", "targets[0] must be a mapping", "action.targets[0]"),
        ("{type: weighted_route, targets: [{weight: 1}]}", "targets[0].provider must be a provider name",
         "action.targets[0].provider"),
        ("{type: weighted_route, targets: [{provider: a}]}", "missing field `weight`", "action.targets[0].weight"),
        ("{type: weighted_route, targets: [{provider: a, weight: -1}]}", "must be a finite number >= 0, got -1",
         "action.targets[0].weight"),
        ("{type: weighted_route, targets: [{provider: a, weight: '5'}]}", "got '5'", "action.targets[0].weight"),
        ("{type: weighted_route, targets: [{provider: a, weight: .inf}]}", "finite", "action.targets[0].weight"),
        ("{type: weighted_route, targets: [{provider: a, weight: 0}]}", "add up to 0", "action.targets"),
        ("{type: weighted_route, targets: [{provider: a, weight: 1}, {provider: a, weight: 1}]}",
         "'a' is listed twice", "action.targets[1].provider"),
        ("{type: weighted_route, strategy: round_robin, targets: [{provider: a, weight: 1}]}",
         "unknown strategy 'round_robin'", "action.strategy"),
    ],
)
def test_yaml_errors_name_rule_and_key(action: str, message: str, key: str) -> None:
    with pytest.raises(RuleLoadError) as info:
        one_rule(action)
    assert message in str(info.value)
    assert info.value.rule == "r"
    assert info.value.key == key


def test_unknown_keys_warn() -> None:
    rules = one_rule("{type: weighted_route, colour: red, targets: [{provider: a, weight: 1, note: x}]}")
    warnings = " | ".join(rules.warnings)
    assert "key 'action.colour'" in warnings
    assert "key 'action.targets[0].note'" in warnings


def test_cel_rule_file_accepts_it() -> None:
    text = ("rules:\n  - name: split\n    condition: 'action.action_type == \"send_email\"'\n"
            "    action: {type: weighted_route, strategy: random, targets: [{provider: a, weight: 1}]}\n")
    (rule,) = load_rules(text, format="cel")
    assert rule.verdict().strategy == "random"


# --------------------------------------------------------------------------- in the gateway


async def test_gateway_routes_by_weight() -> None:
    email, v2 = RecordingProvider("email"), RecordingProvider("email-v2")
    async with gateway([email, v2], rules=CANARY) as gw:
        outcomes = [await gw.dispatch(make_action()) for _ in range(1000)]
    rerouted = [o for o in outcomes if isinstance(o, Rerouted)]
    executed = [o for o in outcomes if isinstance(o, Executed)]
    assert len(rerouted) + len(executed) == 1000
    assert 50 <= len(rerouted) <= 150  # ~10 %
    assert all((o.original_provider, o.new_provider) == ("email", "email-v2") for o in rerouted)
    assert (email.calls, v2.calls) == (len(executed), len(rerouted))
    assert gw.metrics["executed"] == len(executed) and gw.metrics["rerouted"] == len(rerouted)
    assert v2.actions[0].provider == "email"  # the action keeps its own provider field


async def test_same_action_id_goes_to_the_same_provider() -> None:
    email, v2 = RecordingProvider("email"), RecordingProvider("email-v2")
    async with gateway([email, v2], rules=CANARY) as gw:
        action = make_action()
        kinds = {type(await gw.dispatch(action)) for _ in range(5)}
        assert len(kinds) == 1
        dry = await gw.dispatch(action, dry_run=True)
        assert isinstance(dry, DryRun)
        assert dry.verdict == "weighted_route" and dry.matched_rule == "canary"
        expected = "email-v2" if kinds == {Rerouted} else "email"
        assert dry.would_be_provider == expected


async def test_dry_run_reports_the_pick() -> None:
    rules = "rules:\n  - {name: all-v2, condition: {all: []}, action: {type: weighted_route, " \
            "targets: [{provider: email, weight: 0}, {provider: email-v2, weight: 3}]}}\n"
    email, v2 = RecordingProvider("email"), RecordingProvider("email-v2")
    async with gateway([email, v2], rules=rules) as gw:
        assert await gw.dispatch(make_action(), dry_run=True) == DryRun("weighted_route", "all-v2", "email-v2")
        assert email.calls == v2.calls == 0


async def test_failures_and_unknown_targets() -> None:
    rules = "rules:\n  - {name: to-broken, condition: {all: []}, action: {type: weighted_route, " \
            "targets: [{provider: broken, weight: 1}]}}\n"
    async with gateway([RecordingProvider("email"), FailingProvider("broken")], rules=rules) as gw:
        assert isinstance(await gw.dispatch(make_action()), Failed)
        assert gw.metrics["failed"] == 1
    rules = rules.replace("broken", "ghost")
    async with gateway([RecordingProvider("email")], rules=rules) as gw:
        with pytest.raises(ProviderNotFoundError, match="ghost"):
            await gw.dispatch(make_action())


async def test_routed_provider_keeps_its_breaker_and_fallback() -> None:
    rules = "rules:\n  - {name: to-v2, condition: {all: []}, action: {type: weighted_route, " \
            "targets: [{provider: email-v2, weight: 1}]}}\n"
    email, v2 = RecordingProvider("email"), FailingProvider("email-v2")
    cfg = {"failure_threshold": 1, "providers": {"email-v2": {"fallback_provider": "email"}}}
    async with gateway([email, v2], cfg, rules=rules) as gw:
        assert isinstance(await gw.dispatch(make_action()), Failed)  # trips email-v2
        outcome = await gw.dispatch(make_action())  # open: falls back to email
        assert isinstance(outcome, Rerouted) and outcome.new_provider == "email"
        assert gw.metrics["circuit_fallbacks"] == 1
    email, v2 = RecordingProvider("email"), RecordingProvider("email-v2")
    async with gateway([email, v2], {"failure_threshold": 1}, rules=rules) as gw:
        outcome = await gw.dispatch(make_action())
        assert isinstance(outcome, Rerouted) and outcome.new_provider == "email-v2"
        assert gw.metrics["rerouted"] == 1
        await gw.trip_circuit("email-v2")
        assert await gw.dispatch(make_action()) == CircuitOpen("email-v2", [])


async def test_programmatic_rule_is_validated_at_dispatch() -> None:
    bad = Rule("bad-split", ir.Bool(True), RuleAction("weighted_route", targets=[{"provider": "a", "weight": -2}]))
    async with gateway([RecordingProvider("email")], rules=RuleSet([bad])) as gw:
        with pytest.raises(ConfigurationError, match=r"weighted_route rule 'bad-split'.*targets\[0\]\.weight"):
            await gw.dispatch(make_action())
    good = Rule("split", ir.Bool(True), RuleAction("weighted_route", targets=[{"provider": "email", "weight": 1}]))
    async with gateway([RecordingProvider("email")], rules=RuleSet([good])) as gw:
        assert isinstance(await gw.dispatch(make_action()), Executed)
        assert isinstance(await gw.dispatch(make_action()), Executed)  # cached router
