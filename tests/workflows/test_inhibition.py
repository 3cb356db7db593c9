"""Inhibition end to end: an active parent event suppresses dependent actions (scenario 55, D17).

The state machine writes ``active_events``; ``has_active_event`` reads it from
YAML (``has_active_event:`` / ``inhibit_if_active:``) and from CEL.
"""

from __future__ import annotations

from typing import Any

import pytest

from acteon import Action
from acteon.outcomes import Executed, StateChanged, Suppressed
from tests.workflows._env import Env

pytestmark = pytest.mark.anyio

CLUSTER: dict[str, Any] = {
    "name": "cluster",
    "initial_state": "firing",
    "states": ["firing", "resolved"],
    "transitions": [{"from": "firing", "to": "resolved"}, {"from": "resolved", "to": "firing"}],
    "timeouts": [{"in_state": "firing", "after_seconds": 600, "transition_to": "resolved"}],
}

TRACK = """
  - name: track-cluster
    priority: 1
    condition: {field: action.action_type, eq: cluster_down}
    action: {type: state_machine, state_machine: cluster, fingerprint_fields: [action_type, metadata.cluster]}
"""
YAML_INHIBIT = "rules:" + TRACK + """
  - name: inhibit-pod-alerts
    priority: 2
    condition:
      all:
        - {field: action.action_type, eq: pod_down}
        - {inhibit_if_active: cluster_down}
    action: {type: suppress}
"""
YAML_HAS_ACTIVE = YAML_INHIBIT.replace("{inhibit_if_active: cluster_down}", "{has_active_event: cluster_down}")
CEL_INHIBIT = "rules:" + TRACK + """
  - name: inhibit-pod-alerts
    priority: 2
    condition: {cel: 'action.action_type == "pod_down" && has_active_event("cluster_down")'}
    action: {type: suppress}
"""
CEL_LABELLED = "rules:" + TRACK + """
  - name: inhibit-pod-alerts
    priority: 2
    condition: {cel: 'action.action_type == "pod_down" && has_active_event("cluster_down", action.metadata.cluster)'}
    action: {type: suppress}
"""
YAML_LABELLED = "rules:" + TRACK + """
  - name: inhibit-pod-alerts
    priority: 2
    condition:
      all:
        - {field: action.action_type, eq: pod_down}
        - {has_active_event: cluster_down, label_field: action.metadata.cluster}
    action: {type: suppress}
"""


def cluster_down(status: str | None = None, cluster: str = "prod") -> Action:
    return Action(namespace="ns", tenant="t1", provider="webhook", action_type="cluster_down",
                  metadata={"cluster": cluster}, status=status)


def pod_down(cluster: str = "prod") -> Action:
    return Action(namespace="ns", tenant="t1", provider="webhook", action_type="pod_down",
                  metadata={"cluster": cluster}, payload={"pod": "api-1"})


@pytest.mark.parametrize("rules", [YAML_INHIBIT, YAML_HAS_ACTIVE, CEL_INHIBIT], ids=["inhibit_if_active",
                                                                                      "has_active_event", "cel"])
async def test_an_active_parent_suppresses_dependents_until_resolved(rules: str) -> None:
    async with Env(rules, state_machines=[CLUSTER]) as env:
        assert isinstance(await env.gw.dispatch(pod_down()), Executed)  # no parent yet
        parent = await env.gw.dispatch(cluster_down())
        assert isinstance(parent, StateChanged) and parent.new_state == "firing"
        assert await env.gw.dispatch(pod_down()) == Suppressed("inhibit-pod-alerts")
        assert await env.gw.dispatch(pod_down(cluster="staging")) == Suppressed("inhibit-pod-alerts")  # any fp
        resolved = await env.gw.dispatch(cluster_down("resolved"))
        assert isinstance(resolved, StateChanged) and resolved.new_state == "resolved"
        assert isinstance(await env.gw.dispatch(pod_down()), Executed)
        assert [a.action_type for a in env.webhook.actions] == ["pod_down", "pod_down"]


async def test_the_label_form_finds_nothing_without_label_field() -> None:
    async with Env(CEL_LABELLED, state_machines=[CLUSTER]) as env:
        await env.gw.dispatch(cluster_down())
        assert isinstance(await env.gw.dispatch(pod_down()), Executed)  # as upstream: never matches
        await env.gw.dispatch(cluster_down("resolved"))
        assert isinstance(await env.gw.dispatch(pod_down()), Executed)


@pytest.mark.parametrize("rules", [CEL_LABELLED, YAML_LABELLED], ids=["cel", "yaml"])
async def test_label_field_scopes_inhibition_to_one_label(rules: str) -> None:
    machine = dict(CLUSTER, label_field="metadata.cluster")
    async with Env(rules, state_machines=[machine]) as env:
        await env.gw.dispatch(cluster_down(cluster="prod"))
        assert await env.gw.dispatch(pod_down("prod")) == Suppressed("inhibit-pod-alerts")
        assert isinstance(await env.gw.dispatch(pod_down("staging")), Executed)
        await env.gw.dispatch(cluster_down("resolved", cluster="prod"))
        assert isinstance(await env.gw.dispatch(pod_down("prod")), Executed)


async def test_one_resolved_event_does_not_hide_another_still_firing() -> None:
    async with Env(CEL_INHIBIT, state_machines=[CLUSTER]) as env:
        await env.gw.dispatch(cluster_down(cluster="prod"))
        await env.gw.dispatch(cluster_down(cluster="staging"))
        await env.gw.dispatch(cluster_down("resolved", cluster="staging"))  # the latest event is resolved
        assert await env.gw.dispatch(pod_down()) == Suppressed("inhibit-pod-alerts")  # prod still firing
        await env.gw.dispatch(cluster_down("resolved", cluster="prod"))
        assert isinstance(await env.gw.dispatch(pod_down()), Executed)
        raw = await env.state.get("ns:t1:active_events:cluster_down")
        assert raw is not None and '"state":"resolved"' in raw


async def test_a_timeout_to_resolved_lifts_the_inhibition() -> None:
    async with Env(YAML_INHIBIT, state_machines=[CLUSTER]) as env:
        await env.gw.dispatch(cluster_down())
        assert isinstance(await env.gw.dispatch(pod_down()), Suppressed)
        assert (await env.advance(600))["state_timeouts"] == 1
        assert isinstance(await env.gw.dispatch(pod_down()), Executed)


async def test_active_events_keep_the_upstream_shape() -> None:
    import json

    async with Env(YAML_INHIBIT, state_machines=[CLUSTER]) as env:
        outcome = await env.gw.dispatch(cluster_down())
        assert isinstance(outcome, StateChanged)
        raw = await env.state.get("ns:t1:active_events:cluster_down")
        assert raw is not None
        value = json.loads(raw)
        assert value["state"] == "firing" and value["fingerprint"] == outcome.fingerprint
        # an upstream-written value (no "active" map) is understood and carried over
        await env.state.set("ns:t1:active_events:cluster_down", json.dumps({"state": "firing", "fingerprint": "old"}))
        await env.gw.dispatch(cluster_down("resolved"))
        assert await env.gw.dispatch(pod_down()) == Suppressed("inhibit-pod-alerts")  # "old" still firing
