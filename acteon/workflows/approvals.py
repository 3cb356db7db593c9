"""Human approvals: the ``request_approval`` verdict (workflows.md §5, DECISIONS D15).

A matching rule parks the action: the gateway stores an approval record, sends
a notification with signed approve/reject links through the rule's
``notify_provider`` and returns ``PendingApproval``. Later one of:

- **approve** (valid link, before expiry): the original action is dispatched
  again through the whole pipeline -- today's rules, lock, audit record and
  event -- with a flag only this process can set, so the approval rule does not
  park it a second time;
- **reject**: recorded, audited, announced; nothing runs;
- **expiry** (background job ``approval_expiry``): status ``expired``, an
  ``approval_expired`` event and an audit record.

Exactly one of these happens per approval, across processes: each takes the
claim ``{ns}:{tenant}:approval:{id}:claim`` with an atomic set-if-absent before
touching the record, and the record itself is only rewritten by
compare-and-swap. Notifications that failed are retried by a sweep
(``approval_notification_retry``, every 60 s of clock time, §5.8).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio

from acteon._action import Action
from acteon._audit_builder import action_metadata, fast_uuid7
from acteon._background import every
from acteon._caller import Caller
from acteon._claims import claim, release
from acteon._events import (
    APPROVAL_EXPIRED,
    APPROVAL_REQUIRED,
    APPROVAL_RESOLVED,
    StreamEvent,
)
from acteon._exceptions import (
    ActeonError,
    ApprovalAlreadyDecided,
    ApprovalExpired,
    ApprovalNotFound,
    ApprovalSignatureError,
    ConfigurationError,
    StateError,
    UsageError,
)
from acteon._timefmt import format_rfc3339
from acteon.audit._model import AuditRecord
from acteon.outcomes import Outcome, PendingApproval
from acteon.rules import Verdict
from acteon.state._keys import StateKey
from acteon.workflows._approval_model import (
    APPROVED,
    CLAIM_SUFFIX,
    EXPIRED,
    PENDING,
    REJECTED,
    STATUSES,
    Approval,
    ApprovalLinks,
    ApprovalRecord,
)
from acteon.workflows._internal import internal_dispatch, internal_origin
from acteon.workflows._signing import ApprovalKeyring, build_keyring

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway

_log = logging.getLogger("acteon.approvals")

CLAIM_TTL = 86_400
"""A decision's claim lives a day (upstream's value): a repeated decision meanwhile
reads ``approval already decided: concurrent update``."""
EXPIRY_GRACE = 86_400
"""A pending record outlives its expiry by this much, so the expiry job still
finds it to record ``expired`` even if no process ticked for a while."""
RETENTION = 7 * 86_400
"""Decided and expired records stay readable (and listed) this long, then vanish."""
RETRY_INTERVAL = 60.0
"""Cadence of the notification retry sweep (upstream's cleanup interval)."""

def _record_key(namespace: str, tenant: str, approval_id: str) -> str:
    return StateKey(namespace, tenant, "approval", approval_id).canonical


def _parse_expires(value: Any) -> int:
    """The link's ``expires_at`` (Unix seconds, possibly a query-string text)."""
    if isinstance(value, bool):
        raise ApprovalSignatureError("expires_at must be Unix seconds")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ApprovalSignatureError(f"expires_at must be Unix seconds, got {value!r}")


class ApprovalManager:
    """Approvals of one gateway; reached through ``gateway._approvals``."""

    def __init__(self, gateway: AsyncGateway, keyring: ApprovalKeyring) -> None:
        self._gw = gateway
        self.keyring = keyring
        self._warned_url = False

    # ------------------------------------------------------------------ helpers

    @property
    def external_url(self) -> str:
        url = self._gw.config.external_url.rstrip("/")
        if not self._warned_url and not url.startswith("https://"):
            self._warned_url = True
            _log.warning("approval links use external_url %r, which is not https://", url)
        return url

    def _links(self, record: ApprovalRecord) -> ApprovalLinks:
        ns, tenant, ident = record.action.namespace, record.action.tenant, record.token
        ts = record.expires_ts
        approve_sig, kid = self.keyring.sign(ns, tenant, ident, "approve", ts)
        reject_sig, _ = self.keyring.sign(ns, tenant, ident, "reject", ts)
        base = f"{self.external_url}/v1/approvals/{ns}/{tenant}/{ident}"
        tail = f"&expires_at={ts}&kid={quote(kid, safe='')}"
        return ApprovalLinks(
            approval_id=ident,
            approve_url=f"{base}/approve?sig={approve_sig}{tail}",
            reject_url=f"{base}/reject?sig={reject_sig}{tail}",
            approve_sig=approve_sig,
            reject_sig=reject_sig,
            expires_at=ts,
            kid=kid,
        )

    def _check_link(
        self, namespace: str, tenant: str, approval_id: str, decision: str, sig: Any, expires_at: Any,
        kid: str | None,
    ) -> int:
        """Signature first, then the clock (§5.5 step 1 with D15); returns the expiry."""
        ts = _parse_expires(expires_at)
        if not sig or not self.keyring.verify(namespace, tenant, approval_id, decision, ts, sig, kid):
            which = "any key" if kid is None else f"key '{kid}'"
            raise ApprovalSignatureError(
                f"the {decision} signature of approval {approval_id} in {namespace}/{tenant} "
                f"does not verify with {which}"
            )
        if self._gw.clock.time() >= ts:
            raise ApprovalExpired(f"approval {approval_id} expired at {format_rfc3339(_from_ts(ts))}")
        return ts

    async def _load(self, key: str) -> tuple[ApprovalRecord, int] | None:
        found = await self._gw.state.get_versioned(key)
        if found is None:
            return None
        return ApprovalRecord.from_json(found[0]), found[1]

    async def _swap(
        self, key: str, change: Callable[[ApprovalRecord], ApprovalRecord | None], ttl: float | None
    ) -> ApprovalRecord | None:
        """Compare-and-swap loop: ``change`` returns the new record, or ``None`` to give up
        (the record moved on). Returns the written record, or ``None``."""
        for _ in range(16):
            loaded = await self._load(key)
            if loaded is None:
                return None
            updated = change(loaded[0])
            if updated is None:
                return None
            if (await self._gw.state.compare_and_swap(key, loaded[1], updated.to_json(), ttl)).ok:
                return updated
        raise StateError(f"approval record {key} kept changing; gave up after 16 attempts")

    def _publish(self, kind: str, record: ApprovalRecord, **data: Any) -> None:
        action = record.action
        self._gw._events.publish(
            StreamEvent(kind, self._gw.clock.now(), action.namespace, action.tenant, action.action_type,
                        action.id, {"approval_id": record.token, **data})
        )

    async def _audit(self, record: ApprovalRecord, outcome: str, details: dict[str, Any],
                     caller: Caller | None) -> None:
        """One audit record for a decision that executes nothing (reject, expiry)."""
        audit = self._gw.audit
        if audit is None:
            return
        gw = self._gw
        now = gw.clock.now()
        action = record.action
        builder = gw._audit_builder
        ttl = builder.ttl
        await audit.record(AuditRecord(
            id=fast_uuid7(now),
            action_id=action.id,
            namespace=action.namespace,
            tenant=action.tenant,
            provider=action.provider,
            action_type=action.action_type,
            verdict="request_approval",
            outcome=outcome,
            dispatched_at=now,
            completed_at=now,
            matched_rule=record.rule or None,
            action_payload=action.payload if builder.store_payload else None,
            verdict_details={"verdict": "request_approval"},
            outcome_details=details,
            metadata=action_metadata(action),
            expires_at=None if ttl is None else now + ttl,
            caller_id="" if caller is None else caller.id,
            auth_method="" if caller is None else caller.auth_method,
        ))

    async def _notify(self, record: ApprovalRecord, links: ApprovalLinks, notify_provider: str) -> bool:
        """Send the notification straight through the executor (rules bypassed, §5.3 step 5)."""
        gw = self._gw
        provider = gw._providers.get(notify_provider)
        action = record.action
        if provider is None:
            _log.warning("approval %s: notify provider '%s' is not registered; notification not sent",
                         record.token, notify_provider)
            return False
        body = (
            f"Action '{action.action_type}' requires approval.\n\n"
            f"Reason: {record.message or 'Approval required'}\n\n"
            f"Approve: {links.approve_url}\nReject: {links.reject_url}"
        )
        notification = Action(
            namespace=action.namespace,
            tenant=action.tenant,
            provider=notify_provider,
            action_type="approval_notification",
            created_at=gw.clock.now(),
            payload={
                "subject": f"Approval Required: {action.action_type}",
                "body": body,
                "approval_url": links.approve_url,
                "reject_url": links.reject_url,
                "action_id": action.id,
                "action_type": action.action_type,
                "namespace": action.namespace,
                "tenant": action.tenant,
                "expires_at": format_rfc3339(record.expires_at),
            },
        )
        outcome = await gw._executor.execute(notification, provider)
        if outcome.is_failure:
            _log.warning("approval %s: notification through '%s' failed: %s", record.token, notify_provider,
                         outcome.to_wire())
            return False
        return True

    async def _mark_notified(self, key: str) -> None:
        def change(r: ApprovalRecord) -> ApprovalRecord | None:
            if r.status != PENDING or r.notification_sent:
                return None
            return ApprovalRecord(r.action, r.token, r.rule, r.created_at, r.expires_at, r.status,
                                  r.decided_by, r.decided_at, r.message, True)

        await self._swap(key, change, None)  # ttl None: keep the record's expiry

    # ------------------------------------------------------------------ the verdict

    async def on_request_approval(
        self, action: Action, verdict: Verdict, now: datetime, caller: Caller | None
    ) -> Outcome:
        """Verdict handler (runs under the dispatch lock)."""
        gw = self._gw
        if internal_origin(action) is not None:
            # The approved action itself, dispatched again by approve() (or another
            # notification the gateway sends itself): deliver it. The mark lives in a
            # context variable, which no payload, metadata or other process can set.
            return await gw._execute_action(action)
        timeout = 3600 if verdict.timeout_seconds is None else int(verdict.timeout_seconds)
        notify_provider = str(verdict.notify_provider or "")
        message = verdict.message
        ident = str(uuid.uuid4())
        expires_ts = int(now.timestamp()) + timeout
        record = ApprovalRecord(
            action=action,
            token=ident,
            rule=verdict.rule or "",
            created_at=now,
            expires_at=_from_ts(expires_ts),
            message=message if message is None else str(message),
        )
        key = _record_key(action.namespace, action.tenant, ident)
        state = gw.state
        await state.set(key, record.to_json(), timeout + EXPIRY_GRACE)
        index = StateKey(action.namespace, action.tenant, "pending_approvals", action.id).canonical
        await state.set(
            index,
            json.dumps({"token": ident, "created_at": format_rfc3339(now),
                        "expires_at": format_rfc3339(record.expires_at)}, separators=(",", ":")),
            max(timeout, 1),
        )
        await state.index_timeout(key, expires_ts * 1000)
        links = self._links(record)
        sent = await self._notify(record, links, notify_provider)
        if sent:
            await self._mark_notified(key)
        gw._metrics.pending_approval += 1
        self._publish(APPROVAL_REQUIRED, record)
        return PendingApproval(ident, record.expires_at, links.approve_url, links.reject_url, sent)

    # ------------------------------------------------------------------ decisions

    async def approve(
        self, namespace: str, tenant: str, approval_id: str, sig: Any, expires_at: Any, kid: str | None,
        caller: Caller | None,
    ) -> Outcome:
        """Decide ``approved`` and run the original action through the pipeline (§5.5, D15)."""
        await self._gw.start()
        self._check_link(namespace, tenant, approval_id, "approve", sig, expires_at, kid)
        key = _record_key(namespace, tenant, approval_id)
        record = await self._decide(key, APPROVED, caller)
        gw = self._gw
        try:
            with internal_dispatch(record.action, "approval"):
                outcome = await gw.dispatch(record.action, caller=caller)
        except BaseException:
            # Nothing ran (the pipeline raised before or instead of executing):
            # give the approval back so the same link works again.
            with anyio.CancelScope(shield=True):
                await self._undo(key, record)
            raise
        return outcome

    async def reject(
        self, namespace: str, tenant: str, approval_id: str, sig: Any, expires_at: Any, kid: str | None,
        caller: Caller | None,
    ) -> Approval:
        """Decide ``rejected``: recorded, audited and announced; nothing runs (§5.6)."""
        await self._gw.start()
        self._check_link(namespace, tenant, approval_id, "reject", sig, expires_at, kid)
        key = _record_key(namespace, tenant, approval_id)
        record = await self._decide(key, REJECTED, caller)
        await self._audit(record, "approval_rejected",
                          {"approval_id": record.token, "status": REJECTED,
                           "decided_at": format_rfc3339(record.decided_at or self._gw.clock.now())}, caller)
        return Approval.from_record(record, self._gw.clock.now())

    async def _decide(self, key: str, status: str, caller: Caller | None) -> ApprovalRecord:
        """Claim, then flip ``pending`` to ``status`` by compare-and-swap; event and metrics."""
        gw = self._gw
        claim_key = key + CLAIM_SUFFIX
        if not await claim(gw.state, claim_key, status, CLAIM_TTL):
            raise ApprovalAlreadyDecided("concurrent update")
        try:
            loaded = await self._load(key)
            if loaded is None:
                raise ApprovalNotFound()
            if loaded[0].status != PENDING:
                raise ApprovalAlreadyDecided(loaded[0].status)
            now = gw.clock.now()
            seen: list[str] = []

            def change(r: ApprovalRecord) -> ApprovalRecord | None:
                if r.status != PENDING:
                    seen.append(r.status)
                    return None
                return r.with_status(status, now)

            record = await self._swap(key, change, RETENTION)
            if record is None:
                if seen:
                    raise ApprovalAlreadyDecided(seen[-1])
                raise ApprovalNotFound()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await release(gw.state, claim_key, status)
            raise
        await gw.state.remove_timeout_index(key)
        if status == APPROVED:
            gw._metrics.approvals_approved += 1
        else:
            gw._metrics.approvals_rejected += 1
        self._publish(APPROVAL_RESOLVED, record, decision=status)
        return record

    async def _undo(self, key: str, record: ApprovalRecord) -> None:
        """Put an approved record back to pending after its execution could not start."""
        gw = self._gw
        try:
            remaining = max(record.expires_ts - gw.clock.time(), 0.0)
            await self._swap(
                key, lambda r: r.with_status(PENDING, None) if r.status == APPROVED else None,
                remaining + EXPIRY_GRACE,
            )
            await gw.state.index_timeout(key, record.expires_ts * 1000)
            await release(gw.state, key + CLAIM_SUFFIX, APPROVED)
        except ActeonError as exc:  # the original error matters more; this one is logged
            _log.error("approval %s: could not return to pending after a failed execution: %s",
                       record.token, exc)

    # ------------------------------------------------------------------ queries

    async def list(self, namespace: str, tenant: str, status: str | None) -> list[Approval]:
        if status is not None and status not in STATUSES:
            raise UsageError(f"list_approvals: status must be one of {', '.join(STATUSES)}, got {status!r}")
        await self._gw.start()
        now = self._gw.clock.now()
        out: list[Approval] = []
        for key, value in await self._gw.state.scan_keys(namespace, tenant, "approval"):
            if key.endswith(CLAIM_SUFFIX):
                continue
            try:
                view = Approval.from_record(ApprovalRecord.from_json(value), now)
            except ActeonError as exc:
                _log.warning("skipping %s: %s", key, exc)
                continue
            if status is None or view.status == status:
                out.append(view)
        out.sort(key=lambda a: (a.created_at, a.id))
        return out

    async def get(
        self, namespace: str, tenant: str, approval_id: str, sig: str | None, expires_at: Any, kid: str | None
    ) -> Approval | None:
        """The approval, or ``None``. With ``sig`` the link is checked first (either
        decision's signature will do) and a bad one reads as ``None`` (§5.7)."""
        await self._gw.start()
        if sig is not None:
            try:
                ts = _parse_expires(expires_at)
            except ApprovalSignatureError:
                return None
            if not any(self.keyring.verify(namespace, tenant, approval_id, d, ts, sig, kid)
                       for d in ("approve", "reject")):
                return None
        loaded = await self._load(_record_key(namespace, tenant, approval_id))
        if loaded is None:
            return None
        return Approval.from_record(loaded[0], self._gw.clock.now())

    async def links(self, namespace: str, tenant: str, approval_id: str) -> ApprovalLinks:
        await self._gw.start()
        loaded = await self._load(_record_key(namespace, tenant, approval_id))
        if loaded is None:
            raise ApprovalNotFound()
        return self._links(loaded[0])

    # ------------------------------------------------------------------ background jobs

    async def expire_due(self, now: datetime) -> int:
        """Job ``approval_expiry``: record ``expired`` once per approval, across processes."""
        count = 0
        for key in await self._gw.state.get_expired_timeouts(int(now.timestamp() * 1000)):
            parts = key.split(":", 3)
            if len(parts) != 4 or parts[2] != "approval" or parts[3].endswith(CLAIM_SUFFIX):
                continue  # the index is shared with state machines and schedules
            try:
                count += await self._expire_one(key, now)
            except ConfigurationError as exc:  # a corrupt record: it will never parse, stop retrying it
                _log.error("approval %s cannot expire: %s; dropping its expiry entry", key, exc)
                await self._gw.state.remove_timeout_index(key)
            except ActeonError as exc:  # the others still expire; this one is retried next tick
                _log.error("approval %s: expiry failed: %s", key, exc)
        return count

    async def _expire_one(self, key: str, now: datetime) -> int:
        gw = self._gw
        state = gw.state
        if not await claim(state, key + CLAIM_SUFFIX, EXPIRED, CLAIM_TTL):
            # Someone is deciding or expiring it; drop the entry once it moved on.
            loaded = await self._load(key)
            if loaded is None or loaded[0].status != PENDING:
                await state.remove_timeout_index(key)
            return 0
        try:
            record = await self._swap(key, _expire_at(now), RETENTION)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await release(state, key + CLAIM_SUFFIX, EXPIRED)
            raise
        await state.remove_timeout_index(key)
        if record is None:
            return 0
        gw._metrics.approvals_expired += 1
        self._publish(APPROVAL_EXPIRED, record)
        await self._audit(record, "approval_expired",
                          {"approval_id": record.token, "status": EXPIRED,
                           "expires_at": format_rfc3339(record.expires_at)}, None)
        return 1

    async def retry_notifications(self, now: datetime) -> int:
        """Job ``approval_notification_retry`` (§5.8): resend what failed, with fresh links."""
        gw = self._gw
        state = gw.state
        sent = 0
        for key, value in await state.scan_keys_by_kind("approval"):
            if key.endswith(CLAIM_SUFFIX):
                continue
            try:
                record = ApprovalRecord.from_json(value)
            except ActeonError as exc:
                _log.warning("skipping %s: %s", key, exc)
                continue
            if record.status != PENDING or record.notification_sent or now.timestamp() >= record.expires_ts:
                continue
            try:
                verdict = await gw.rules.aevaluate(record.action, now=now, state=state, env=gw._env,
                                                   timezone=gw._tz)
            except ActeonError as exc:
                _log.warning("approval %s: rules could not be evaluated for the retry: %s", record.token, exc)
                continue
            if verdict.kind != "request_approval":
                continue  # the rules no longer ask for this approval: give up, as upstream
            # One process per sweep interval sends it, whatever the number of processes.
            slot = int(now.timestamp() // RETRY_INTERVAL)
            retry_claim = StateKey(record.action.namespace, record.action.tenant, "approval_retry_claim",
                                   f"{record.token}:{slot}").canonical
            if not await claim(state, retry_claim, "sending", RETRY_INTERVAL * 2):
                continue
            if await self._notify(record, self._links(record), str(verdict.notify_provider)):
                await self._mark_notified(key)
                sent += 1
        return sent


def _expire_at(now: datetime) -> Callable[[ApprovalRecord], ApprovalRecord | None]:
    def change(record: ApprovalRecord) -> ApprovalRecord | None:
        return record.with_status(EXPIRED, now) if record.status == PENDING else None

    return change


def _from_ts(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def attach(gateway: AsyncGateway, options: dict[str, Any]) -> None:
    """Register the verdict handler and the two background jobs (``acteon._features``)."""
    keyring = build_keyring(options.get("approval_keys"), options.get("approval_secret"))
    if keyring.random:
        _log.debug("no approval_keys configured: approval links are signed with a random per-process key")
    manager = ApprovalManager(gateway, keyring)
    gateway._approvals = manager
    gateway._verdict_handlers["request_approval"] = manager.on_request_approval
    gateway._jobs["approval_expiry"] = manager.expire_due
    gateway._jobs["approval_notification_retry"] = every(RETRY_INTERVAL, manager.retry_notifications)
