"""State machines and inhibition: while a cluster is down, its pod alerts stay quiet.

``cluster_down`` actions drive a state machine (firing -> acknowledged ->
resolved, with a timeout that marks a forgotten incident stale). A second rule
suppresses ``pod_down`` actions of a cluster whose incident is still active,
using ``has_active_event`` from a CEL condition. When the incident resolves,
pod alerts flow again. The "oncall" provider receives the notifications of
``notify: true`` transitions and of the timeout. A fake clock and ``tick()``
replace the hour of waiting.

Run: ``python examples/state_machine_inhibition.py``
"""

from __future__ import annotations

from acteon import Action, Gateway
from acteon.providers import provider
from acteon.testing import FakeClock

INCIDENT = {
    "name": "incident",
    "initial_state": "firing",
    "states": ["firing", "acknowledged", "stale", "resolved"],
    "transitions": [
        {"from": "firing", "to": "acknowledged"},
        {"from": "firing", "to": "resolved", "on_transition": {"notify": True}},
        {"from": "acknowledged", "to": "resolved", "on_transition": {"notify": True}},
        {"from": "stale", "to": "resolved"},
    ],
    "timeouts": [{"in_state": "firing", "after_seconds": 3600, "transition_to": "stale"}],
    "notify_provider": "oncall",          # where notifications go (default: the action's provider)
    "label_field": "metadata.cluster",    # also track active incidents per cluster
}

RULES = """
rules:
  - name: track-incidents
    priority: 1
    condition: {field: action.action_type, eq: cluster_down}
    action: {type: state_machine, state_machine: incident, fingerprint_fields: [action_type, metadata.cluster]}
  - name: quiet-pods-of-a-down-cluster
    priority: 2
    condition:
      cel: 'action.action_type == "pod_down" && has_active_event("cluster_down", action.metadata.cluster)'
    action: {type: suppress}
"""


@provider("pager")
def page(action: Action) -> str:
    return f"paged about {action.payload}"


@provider("oncall")
def oncall(action: Action) -> str:
    body = action.payload
    print(f"    oncall <- {action.action_type}: {body['previous_state']} -> {body['new_state']}")
    return "ok"


def cluster(status: str | None, name: str = "eu-1") -> Action:
    return Action(namespace="ops", tenant="acme", provider="pager", action_type="cluster_down",
                  metadata={"cluster": name}, status=status)


def pod(name: str, cluster_name: str = "eu-1") -> Action:
    return Action(namespace="ops", tenant="acme", provider="pager", action_type="pod_down",
                  metadata={"cluster": cluster_name}, payload={"pod": name})


def main() -> None:
    clock = FakeClock("2026-01-15T12:00:00Z")
    with Gateway(rules=RULES, providers=[page, oncall], clock=clock, background=False,
                 state_machines=[INCIDENT]) as gw:
        print("pod alert, no incident:        ", gw.dispatch(pod("api-1")).kind)
        changed = gw.dispatch(cluster("firing"))
        print("cluster eu-1 goes down (a new event starts in the initial state):", changed.to_wire())
        print("pod alert during the incident: ", gw.dispatch(pod("api-2")).kind)
        print("pod alert of another cluster:  ", gw.dispatch(pod("web-1", "us-1")).kind)
        repeat = gw.dispatch(cluster("firing")).to_wire()["StateChanged"]
        print(f"firing again: {repeat['previous_state']} -> {repeat['new_state']} (the timeout restarts)")
        print("resolve the incident:")
        gw.dispatch(cluster("resolved"))
        print("pod alert after the incident:  ", gw.dispatch(pod("api-3")).kind)

        print("a second incident nobody looks at:")
        fingerprint = gw.dispatch(cluster("firing", "us-1")).to_wire()["StateChanged"]["fingerprint"]
        clock.advance(3600)
        print("  tick after an hour:", gw.tick()["state_timeouts"], "timeout fired")
        event = gw.get_event("ops", "acme", fingerprint)
        assert event is not None
        print(f"  the incident is now {event['state']} (by {event['transitioned_by']})")
        # Only "resolved" and "closed" end an event for has_active_event, so stale still inhibits.
        print("  pod alert of us-1:", gw.dispatch(pod("web-2", "us-1")).kind)
        print("  an operator closes it:", gw.transition_event("ops", "acme", fingerprint, "resolved").to_wire())


if __name__ == "__main__":
    main()
