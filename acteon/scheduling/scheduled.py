"""Scheduled (delayed) actions: the ``schedule`` verdict, ``Action.dispatch_at``
and the delivery job (core-pipeline.md §11 with DECISIONS D11/D12).

Acceptance stores the action under the upstream keys and returns ``Scheduled``:

- ``{ns}:{t}:scheduled_action:{id}`` -- ``{"action_id", "action", "scheduled_for",
  "created_at"}`` plus ``"attempts"`` (failed deliveries so far), TTL = delay + grace;
- ``{ns}:{t}:pending_scheduled:{id}`` -- due time in epoch ms, same TTL, plus an
  entry in the shared timeout index at that time.

The ``scheduled_actions`` job delivers what is due. Each delivery is claimed
first (``...:scheduled_action:{id}:claim``, a ``check_and_set`` with expiry), so
one process delivers it; the stored entry is removed only after the dispatch
returned, so a process that dies mid-delivery leaves it to be delivered again
once its claim expires. Delivery runs the full pipeline with a trusted flag
(:mod:`acteon.scheduling._origin`): the action's own ``schedule`` rule executes it
instead of delaying it again, and quotas do not count it a second time. A
dispatch that raises is retried with exponential backoff and dead-lettered after
``max_delivery_attempts`` (gateway DLQ when enabled, a ``scheduled_action_failed``
event and an audit record).

Rules of a ``dispatch_at`` action run at delivery, not at acceptance: the
``time`` a rule sees, dedup markers and throttle windows are those of the
moment it is sent. Quotas (admission hooks) run at acceptance, as for any
dispatch, so the action counts once, when accepted.
"""

from __future__ import annotations

import logging
import math
import uuid
from datetime import datetime, timedelta
from time import perf_counter
from typing import TYPE_CHECKING

from acteon._action import Action
from acteon._caller import Caller
from acteon._dlq import DeadLetter
from acteon._events import StreamEvent
from acteon._exceptions import ActeonError, ConfigurationError, GatewayError
from acteon.outcomes import Outcome, Scheduled
from acteon.quotas._enforce import quota_exempt
from acteon.rules import Verdict
from acteon.scheduling._config import MAX_DELAY_SECONDS, SchedulingConfig
from acteon.scheduling._model import ScheduledAction, _ms_ceil
from acteon.scheduling._origin import dispatch_origin, trusted_dispatch

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway

_log = logging.getLogger("acteon.scheduling")

_PAYLOAD_MARKER = "_scheduled_dispatch"
"""Set in delivered object payloads, as upstream, for rules and providers that look
for it. It is informational only: the pipeline trusts the out-of-band flag."""


class ScheduledDeliveryError(GatewayError):
    """A scheduled action could not be delivered and was dead-lettered."""


def _keys(namespace: str, tenant: str, scheduled_id: str) -> tuple[str, str, str]:
    data = f"{namespace}:{tenant}:scheduled_action:{scheduled_id}"
    return data, f"{namespace}:{tenant}:pending_scheduled:{scheduled_id}", f"{data}:claim"


class ScheduledActions:
    """Acceptance, delivery and management of scheduled actions for one gateway."""

    def __init__(self, gateway: AsyncGateway, config: SchedulingConfig) -> None:
        self._gw = gateway
        self._config = config

    # ------------------------------------------------------------------ acceptance

    async def handle_verdict(self, action: Action, verdict: Verdict, now: datetime, caller: Caller | None) -> Outcome:
        """The ``schedule`` verdict (runs under the dispatch lock)."""
        if dispatch_origin(action) == "scheduled":
            # This dispatch *is* the delivery: run it instead of delaying it again (D11).
            return await self._gw._execute_action(action)
        delay = verdict.delay_seconds
        if isinstance(delay, bool) or not isinstance(delay, int | float):
            raise ConfigurationError(f"rule '{verdict.rule}': delay_seconds must be a number, got {delay!r}")
        if delay < 1:
            raise ConfigurationError("scheduled delay must be at least 1 second")
        if delay > MAX_DELAY_SECONDS:
            raise ConfigurationError(
                f"scheduled delay {int(delay)}s exceeds maximum of {MAX_DELAY_SECONDS}s (7 days)"
            )
        scheduled_id = str(uuid.uuid4())
        scheduled_for = now + timedelta(seconds=delay)
        await self._store(ScheduledAction(scheduled_id, action.namespace, action.tenant, action,
                                          scheduled_for, now), now, only_new=False)
        self._gw._metrics.scheduled += 1
        return Scheduled(scheduled_id, scheduled_for)

    async def defer(self, action: Action, now: datetime) -> Outcome | None:
        """``dispatch_at`` hook: ``Scheduled`` when it lies ahead, ``None`` to dispatch now.

        The action's own id is the scheduled id, so sending the same action
        again while it waits returns the existing entry instead of a second one.
        """
        due = action.dispatch_at
        if due is None or due <= now or dispatch_origin(action) == "scheduled":
            return None
        delay = (due - now).total_seconds()
        if delay > MAX_DELAY_SECONDS:
            raise ConfigurationError(
                f"scheduled delay {math.ceil(delay)}s exceeds maximum of {MAX_DELAY_SECONDS}s (7 days) "
                f"(dispatch_at of action {action.id})"
            )
        entry = ScheduledAction(action.id, action.namespace, action.tenant, action, due, now)
        if await self._store(entry, now, only_new=True):
            self._gw._metrics.scheduled += 1
            return Scheduled(action.id, due)
        existing = await self.get(action.namespace, action.tenant, action.id)
        if existing is None:  # delivered or cancelled between the two calls: schedule afresh
            await self._store(entry, now, only_new=False)
            self._gw._metrics.scheduled += 1
            return Scheduled(action.id, due)
        return Scheduled(existing.id, existing.scheduled_for)

    async def _store(self, entry: ScheduledAction, now: datetime, *, only_new: bool) -> bool:
        data_key, pending_key, _ = _keys(entry.namespace, entry.tenant, entry.id)
        due_ms = _ms_ceil(entry.scheduled_for)
        ttl = max((entry.scheduled_for - now).total_seconds(), 0.0) + self._config.grace_seconds
        state = self._gw._state
        if only_new:
            if not await state.check_and_set(data_key, entry.to_json(), ttl):
                return False
        else:
            await state.set(data_key, entry.to_json(), ttl)
        await state.set(pending_key, str(due_ms), ttl)
        await state.index_timeout(pending_key, due_ms)
        return True

    # ------------------------------------------------------------------ delivery job

    async def run_due(self, now: datetime) -> int:
        """Deliver every scheduled action due at ``now``; returns how many were delivered."""
        due = await self._gw._state.get_expired_timeouts(int(now.timestamp() * 1000))
        delivered = 0
        for key in due:
            parts = key.split(":", 3)
            if len(parts) != 4 or parts[2] != "pending_scheduled":
                continue
            try:
                delivered += await self._deliver(parts[0], parts[1], parts[3], now)
            except ActeonError as exc:  # a store hiccup must not stop the other deliveries
                _log.error("scheduled action %s: delivery step failed: %s", key, exc)
        return delivered

    async def _deliver(self, namespace: str, tenant: str, scheduled_id: str, now: datetime) -> int:
        state = self._gw._state
        data_key, pending_key, claim_key = _keys(namespace, tenant, scheduled_id)
        owner = uuid.uuid4().hex
        if not await state.check_and_set(claim_key, owner, self._config.claim_ttl_seconds):
            return 0  # another process is delivering it
        raw = await state.get(data_key)
        if raw is None:  # delivered or cancelled meanwhile, or expired past its grace period
            await self._forget(pending_key)
            await self._release(claim_key, owner)
            return 0
        try:
            entry = ScheduledAction.from_json(namespace, tenant, scheduled_id, raw)
        except ValueError as exc:
            _log.error("%s; dropping it", exc)
            self._publish_failed(namespace, tenant, None, scheduled_id, str(exc), 0, now)
            await self._forget(pending_key)
            await self._release(claim_key, owner)
            return 0
        if entry.scheduled_for > now + timedelta(milliseconds=1):
            # The index ran ahead of the entry (it was rescheduled): wait for its time.
            await state.index_timeout(pending_key, _ms_ceil(entry.scheduled_for))
            await self._release(claim_key, owner)
            return 0
        action = entry.action
        if isinstance(action.payload, dict) and action.payload.get(_PAYLOAD_MARKER) is not True:
            action = action.with_payload({**action.payload, _PAYLOAD_MARKER: True})
        self._gw._events.publish(StreamEvent(
            "scheduled_action_due", now, namespace, tenant, action.action_type, entry.id
        ))
        try:
            # Counted toward its quota when accepted; the delivery is not counted again (D12).
            with trusted_dispatch("scheduled", action.id), quota_exempt("scheduled"):
                await self._gw.dispatch(action)
        except Exception as exc:  # any failure of the pipeline is retried, then dead-lettered
            _log.warning("scheduled action %s (attempt %d) failed: %s", entry.id, entry.attempts + 1, exc)
            await self._failed(entry, action, exc, now)
            await self._release(claim_key, owner)
            return 0
        # Delete the entry before the claim: a process that read the index
        # earlier can then only claim an entry that no longer exists.
        await state.delete(data_key)
        await self._forget(pending_key)
        await self._release(claim_key, owner)
        return 1

    async def _failed(self, entry: ScheduledAction, action: Action, error: Exception, now: datetime) -> None:
        attempts = entry.attempts + 1
        message = str(error) or type(error).__name__
        data_key, pending_key, _ = _keys(entry.namespace, entry.tenant, entry.id)
        state = self._gw._state
        if attempts < self._config.max_delivery_attempts:
            retry_at = now + timedelta(seconds=self._config.backoff(attempts))
            retry_ms = _ms_ceil(retry_at)
            ttl = (retry_at - now).total_seconds() + self._config.grace_seconds
            updated = ScheduledAction(entry.id, entry.namespace, entry.tenant, entry.action,
                                      entry.scheduled_for, entry.created_at, attempts, message)
            await state.set(data_key, updated.to_json(), ttl)
            await state.set(pending_key, str(retry_ms), ttl)
            await state.index_timeout(pending_key, retry_ms)
            return
        # Out of attempts: dead-letter it where an operator will see it.
        reason = f"scheduled delivery failed after {attempts} attempts: {message}"
        _log.error("scheduled action %s: %s", entry.id, reason)
        gw = self._gw
        if gw._dlq is not None:
            gw._dlq.push(DeadLetter(action, reason, attempts, now))
        self._publish_failed(entry.namespace, entry.tenant, action.action_type, entry.id, reason, attempts, now)
        if gw._audit is not None:
            record = gw._audit_builder.build_error(
                action, "schedule", None, ScheduledDeliveryError(reason), now, gw._clock.now(), perf_counter(), None
            )
            try:
                await gw._audit.record(record)
            except ActeonError as exc:
                _log.error("could not audit the dead-lettered scheduled action %s: %s", entry.id, exc)
        await state.delete(data_key)
        await self._forget(pending_key)

    def _publish_failed(
        self, namespace: str, tenant: str, action_type: str | None, scheduled_id: str, error: str,
        attempts: int, now: datetime,
    ) -> None:
        self._gw._events.publish(StreamEvent(
            "scheduled_action_failed", now, namespace, tenant, action_type, scheduled_id,
            {"error": error, "attempts": attempts},
        ))

    async def _forget(self, pending_key: str) -> None:
        await self._gw._state.delete(pending_key)
        await self._gw._state.remove_timeout_index(pending_key)

    async def _release(self, claim_key: str, owner: str) -> None:
        # Only our own claim: if it expired and another process took over, leave theirs.
        if await self._gw._state.get(claim_key) == owner:
            await self._gw._state.delete(claim_key)

    # ------------------------------------------------------------------ management

    async def list(self, namespace: str, tenant: str) -> list[ScheduledAction]:
        """Waiting scheduled actions of one namespace/tenant, soonest first."""
        out: list[ScheduledAction] = []
        prefix = f"{namespace}:{tenant}:scheduled_action:"
        for key, value in await self._gw._state.scan_keys(namespace, tenant, "scheduled_action"):
            scheduled_id = key[len(prefix):]
            if scheduled_id.endswith(":claim"):
                continue
            try:
                out.append(ScheduledAction.from_json(namespace, tenant, scheduled_id, value))
            except ValueError as exc:
                _log.warning("%s; not listed", exc)
        out.sort(key=lambda e: (e.scheduled_for, e.id))
        return out

    async def get(self, namespace: str, tenant: str, scheduled_id: str) -> ScheduledAction | None:
        data_key, _, _ = _keys(namespace, tenant, scheduled_id)
        raw = await self._gw._state.get(data_key)
        return None if raw is None else ScheduledAction.from_json(namespace, tenant, scheduled_id, raw)

    async def cancel(self, namespace: str, tenant: str, scheduled_id: str) -> bool:
        """Remove a waiting action; ``False`` if there is none or it is being delivered now.

        Cancelling takes the same claim as a delivery, so the two never overlap:
        either the delivery happens or the cancellation does.
        """
        state = self._gw._state
        data_key, pending_key, claim_key = _keys(namespace, tenant, scheduled_id)
        owner = "cancel-" + uuid.uuid4().hex
        if not await state.check_and_set(claim_key, owner, self._config.claim_ttl_seconds):
            return False
        try:
            existed = await state.delete(data_key)
            await self._forget(pending_key)
        finally:
            await self._release(claim_key, owner)
        return existed


__all__ = ["ScheduledActions", "ScheduledDeliveryError"]
