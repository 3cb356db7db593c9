"""Event grouping: a burst of alerts becomes one notification, with Alertmanager's timers.

A rule groups alerts by cluster and severity. Three alerts in ten seconds are
held back; once ``group_wait_seconds`` has passed the "pager" provider gets a
single ``group_notification`` listing all three. A straggler that arrives after
the flush joins the same group and goes out at the next ``group_interval``
tick, not after another full wait. A fake clock and ``tick()`` stand in for
the minutes that would pass in production.

Run: ``python examples/grouping.py``
"""

from __future__ import annotations

from acteon import Action, Gateway
from acteon.outcomes import Grouped
from acteon.providers import provider
from acteon.testing import FakeClock

RULES = """
rules:
  - name: batch-alerts
    condition: {field: action.action_type, eq: alert}
    action:
      type: group
      group_by: [metadata.cluster, metadata.severity]
      group_wait_seconds: 60         # first notification 60 s after the first alert
      group_interval_seconds: 300    # later alerts of the group go out every 5 minutes at most
      notify_provider: pager         # where the consolidated notification goes
"""


@provider("pager")
def page(action: Action) -> dict[str, int]:
    body = action.payload
    print(f"  PAGE {body['labels']}: {body['event_count']} alert(s): {[e['summary'] for e in body['events']]}")
    return {"paged": body["event_count"]}


@provider("alerts")
def never_called(action: Action) -> None:  # grouped alerts are not executed one by one
    raise AssertionError("grouped actions are not sent individually")


def alert(summary: str, cluster: str = "prod") -> Action:
    return Action(namespace="ops", tenant="acme", provider="alerts", action_type="alert",
                  metadata={"cluster": cluster, "severity": "critical"}, payload={"summary": summary})


def main() -> None:
    clock = FakeClock("2026-01-15T12:00:00Z")
    with Gateway(rules=RULES, providers=[page, never_called], clock=clock, background=False) as gw:
        print("12:00:00-12:00:10  three prod alerts and one staging alert arrive")
        other = gw.dispatch(alert("disk full", cluster="staging"))
        print(f"  the staging alert starts its own group ({other.kind})")
        for summary in ("api down", "db slow", "queue backlog"):
            outcome = gw.dispatch(alert(summary))
            assert isinstance(outcome, Grouped)
            print(f"  grouped: size {outcome.group_size}, notify at {outcome.notify_at:%H:%M:%S}")
            clock.advance(5)

        clock.set("2026-01-15T12:01:00Z")
        print("12:01:00  group_wait is over")
        gw.tick()

        clock.set("2026-01-15T12:02:00Z")
        late = gw.dispatch(alert("api down again"))
        assert isinstance(late, Grouped)
        print(f"12:02:00  a straggler joins the prod group; it waits for the next tick at {late.notify_at:%H:%M:%S}")
        clock.set("2026-01-15T12:06:00Z")
        print("12:06:00  next group_interval tick")
        gw.tick()

        print("groups still tracked:", [(g["state"], g["event_count"]) for g in gw.list_groups()])


if __name__ == "__main__":
    main()
