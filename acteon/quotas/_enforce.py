"""Quota enforcement: the admission hook that counts and limits dispatches per tenant.

Runs before the rules (core-pipeline.md §5.1 step 3, §10.3-10.4, DECISIONS D12):

1. find the policy of the action's (namespace, tenant): a cache entry younger
   than 60 s, else the store (a stored policy overrides a build-time one for
   the same pair), else the build-time policy, which never expires;
2. count the dispatch with one atomic ``increment`` of the window's counter;
3. over the limit, apply the overage behaviour -- block (roll the count back
   and refuse), warn (count a metric), degrade (move the action to the
   fallback provider) or notify (send one notification per window, claimed
   so that one process sends it, and let the action through).

A broken store never stops traffic: lookups and counting fail open.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from time import perf_counter
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from acteon._action import Action
from acteon._exceptions import ConfigurationError, StateError
from acteon._timefmt import format_rfc3339
from acteon.outcomes import Outcome, QuotaExceeded
from acteon.quotas._model import QuotaPolicy, WindowBucket, first_error

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway

_log = logging.getLogger("acteon.quotas")

CACHE_TTL_SECONDS = 60.0
POLICY_PREFIX = "_system:_quotas:quota:"
NOTIFICATION_ACTION_TYPE = "quota_exceeded_notification"

_BUILD_TIME_IDS = uuid.UUID("6f1d4c3e-9a55-4b8e-8f0e-2c7a1b9d5e42")  # uuid5 namespace of build-time ids
_EXEMPT: ContextVar[str | None] = ContextVar("acteon_quota_exempt", default=None)


@contextmanager
def quota_exempt(reason: str = "scheduled") -> Iterator[None]:
    """Dispatches made inside this block are neither counted nor limited.

    For internal deliveries of work that was already counted when it was
    accepted -- a scheduled action counts once, at acceptance (D12). It is a
    context variable, so nothing in an action's payload or metadata can
    switch it on.
    """
    token = _EXEMPT.set(reason)
    try:
        yield
    finally:
        _EXEMPT.reset(token)


def policy_key(policy_id: str) -> str:
    """``_system:_quotas:quota:{id}``: where a policy's JSON is stored."""
    return f"{POLICY_PREFIX}{policy_id}"


def index_key(namespace: str, tenant: str) -> str:
    """``_system:_quotas:quota:idx:{ns}:{tenant}``: the id of the pair's one stored policy."""
    return f"{POLICY_PREFIX}idx:{namespace}:{tenant}"


class _Enforced:
    """An enabled policy readied for the hot path: the counter-key prefix and numbers computed once."""

    __slots__ = ("limit", "policy", "prefix", "seconds")

    def __init__(self, policy: QuotaPolicy) -> None:
        self.policy = policy
        self.prefix = policy.counter_key(0)[:-1]  # "...:{label}:" -- the window index follows
        self.seconds = policy.window.seconds
        self.limit = policy.max_actions


def _enforced(policy: QuotaPolicy | None) -> _Enforced | None:
    return None if policy is None or not policy.enabled else _Enforced(policy)


class QuotaManager:
    """Policy lookup (cache, store, build-time set) and enforcement for one gateway."""

    def __init__(self, gateway: AsyncGateway, policies: Sequence[QuotaPolicy]) -> None:
        self._gw = gateway
        self.static: dict[tuple[str, str], QuotaPolicy] = {}
        for policy in policies:
            policy.validate_limits()
            # As upstream's builder: a later policy for the same pair replaces the earlier one.
            self.static[(policy.namespace, policy.tenant)] = policy
        # Per pair: the policy being enforced (None: no policy, or a disabled one) and when it was read.
        self._cache: dict[tuple[str, str], tuple[_Enforced | None, float]] = {}

    # ------------------------------------------------------------------ lookup

    async def refresh(self, namespace: str, tenant: str, now_ts: float) -> _Enforced | None:
        """Re-read the pair's stored policy and cache what applies (the stored one, else build-time)."""
        pair = (namespace, tenant)
        try:
            stored = await self.load_stored(namespace, tenant)
        except (StateError, ValidationError, ValueError) as exc:
            # Fail open (§10.3), but a build-time policy still holds: it needs no store.
            _log.warning("quota policy lookup for %s:%s failed (%s); not enforcing a stored policy",
                         namespace, tenant, exc)
            return _enforced(self.static.get(pair))
        enforced = _enforced(stored if stored is not None else self.static.get(pair))
        # Absence is cached too, so tenants without a policy cost one read a minute, not one a dispatch.
        self._cache[pair] = (enforced, now_ts)
        return enforced

    async def load_stored(self, namespace: str, tenant: str) -> QuotaPolicy | None:
        state = self._gw._state
        policy_id = await state.get(index_key(namespace, tenant))
        if policy_id is None:
            return None
        raw = await state.get(policy_key(policy_id))
        if raw is None:
            return None
        return QuotaPolicy.model_validate_json(raw)

    def forget(self, namespace: str, tenant: str) -> None:
        self._cache.pop((namespace, tenant), None)

    def remember(self, namespace: str, tenant: str, policy: QuotaPolicy | None, now_ts: float) -> None:
        self._cache[(namespace, tenant)] = (_enforced(policy), now_ts)

    # ------------------------------------------------------------------ enforcement

    async def admit(self, action: Action, now: datetime) -> Action | Outcome:
        """The admission hook: count the dispatch and apply the policy's overage behaviour."""
        now_ts = now.timestamp()
        entry = self._cache.get((action.namespace, action.tenant))
        if entry is not None and now_ts - entry[1] < CACHE_TTL_SECONDS:
            enforced = entry[0]
        else:
            enforced = await self.refresh(action.namespace, action.tenant, now_ts)
        if enforced is None or _EXEMPT.get() is not None:
            return action
        ttl = enforced.seconds
        key = f"{enforced.prefix}{int(now_ts // ttl)}"  # = policy.counter_key(bucket.index)
        state = self._gw._state
        try:
            used = await state.increment(key, 1, ttl)
        except StateError as exc:
            _log.warning("quota counter %s unavailable (%s); allowing", key, exc)
            return action
        if used <= enforced.limit:
            return action
        policy = enforced.policy
        metrics = self._gw._metrics
        behavior = policy.overage_behavior
        kind = behavior.kind
        if kind == "warn":
            metrics.quota_warned += 1
            return action
        if kind == "notify":
            metrics.quota_notified += 1
            await self._notify(policy, used, policy.window.bucket(now), action, now)
            return action
        if kind == "degrade":
            fallback = behavior.fallback_provider
            if fallback is not None and fallback in self._gw._providers:
                metrics.quota_degraded += 1
                if action.provider == fallback:
                    return action
                return action.model_copy(update={"provider": fallback})
            # Nowhere to degrade to: refuse like a block, and say which fallback was missing.
        metrics.quota_exceeded += 1
        try:
            # The refused action must not use up quota: report the count after the rollback (D12).
            used = await state.increment(key, -1, ttl)
        except StateError as exc:
            _log.warning("quota counter %s rollback failed (%s)", key, exc)
            used -= 1
        return QuotaExceeded(action.tenant, policy.max_actions, used, behavior.outcome_label)

    async def _notify(
        self, policy: QuotaPolicy, used: int, bucket: WindowBucket, cause: Action, now: datetime
    ) -> None:
        """Send the window's one overage notification to the policy's target provider."""
        target = policy.overage_behavior.target or ""
        ns, tenant = policy.namespace, policy.tenant
        # One per pair and window, whatever the processes call the policy (a pair has one policy).
        claim = f"{ns}:{tenant}:quota_notify:{policy.window.label}:{bucket.index}"
        try:
            # The first process over the limit claims the window; every other one skips.
            claimed = await self._gw._state.check_and_set(claim, cause.id, policy.window.seconds)
        except StateError as exc:
            _log.warning("quota notification claim %s failed (%s); not notifying", claim, exc)
            return
        if not claimed:
            return
        note = Action(
            namespace=ns,
            tenant=tenant,
            provider=target,
            action_type=NOTIFICATION_ACTION_TYPE,
            payload=notification_payload(policy, used, bucket, cause),
            created_at=now,
        )
        started = perf_counter()
        # Straight to the provider: the notification must not itself count against the quota.
        outcome = await self._gw._execute_action(note)
        if outcome.kind not in ("executed", "rerouted"):
            _log.warning("quota notification for %s:%s to '%s' ended %s", ns, tenant, target, outcome.kind)
        await self._gw._finish(note, "allow", None, outcome, now, started, None)

    # ------------------------------------------------------------------ usage

    async def used(self, policy: QuotaPolicy, now: datetime) -> tuple[int, WindowBucket]:
        bucket = policy.window.bucket(now)
        raw = await self._gw._state.get(policy.counter_key(bucket.index))
        return (int(raw) if raw is not None else 0), bucket


def notification_payload(policy: QuotaPolicy, used: int, bucket: WindowBucket, cause: Action) -> dict[str, Any]:
    """What the notification carries: the policy, the count and the window it refers to."""
    return {
        "policy_id": policy.id,
        "namespace": policy.namespace,
        "tenant": policy.tenant,
        "limit": policy.max_actions,
        "used": used,
        "window": policy.window.label,
        "window_start": format_rfc3339(bucket.start),
        "resets_at": format_rfc3339(bucket.end),
        "action_id": cause.id,
        "action_type": cause.action_type,
        "provider": cause.provider,
    }


def coerce_policies(policies: Sequence[Any] | None, now: datetime) -> list[QuotaPolicy]:
    """Build-time policies from ``QuotaPolicy`` objects or dicts, with errors naming the entry.

    Dicts without timestamps are stamped with ``now`` (the gateway clock); dicts
    without an ``id`` get one derived from the pair, so that every process
    configured alike reports the same id.
    """
    out: list[QuotaPolicy] = []
    for i, item in enumerate(policies or ()):
        if isinstance(item, QuotaPolicy):
            out.append(item)
            continue
        try:
            data = item
            if isinstance(item, Mapping):
                pair = f"{item.get('namespace')}:{item.get('tenant')}"
                data = {"id": str(uuid.uuid5(_BUILD_TIME_IDS, pair)), "created_at": now, "updated_at": now, **item}
            out.append(QuotaPolicy.model_validate(data))
        except ValidationError as exc:
            raise ConfigurationError(f"quota_policies[{i}]: {first_error(exc)}") from exc
    return out
