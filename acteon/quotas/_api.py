"""Quota management methods of the gateway: policy CRUD and usage (server-api.md §2.12).

Stored policies live at ``_system:_quotas:quota:{id}`` with one index key per
(namespace, tenant), ``_system:_quotas:quota:idx:{ns}:{tenant}``, which makes
"one policy per pair" atomic across processes (it is claimed with
``check_and_set`` before the policy is written). Policies given to the
constructor stay in the process; a stored policy for the same pair overrides
one of them, and changes to them through these methods are not persisted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from acteon._exceptions import ConfigurationError
from acteon.quotas._enforce import POLICY_PREFIX, QuotaManager, index_key, policy_key
from acteon.quotas._model import (
    InvalidQuotaPolicy,
    OverageBehavior,
    QuotaPolicy,
    QuotaPolicyConflict,
    QuotaPolicyNotFound,
    QuotaUsage,
    QuotaWindow,
    first_error,
)

if TYPE_CHECKING:
    from acteon._clock import Clock
    from acteon.state._base import StateStore

_log = logging.getLogger("acteon.quotas")


def _validated(data: Mapping[str, Any]) -> QuotaPolicy:
    # Window and behaviour first, so their own messages ("invalid window: ...") come out unwrapped.
    fields = dict(data)
    if "window" in fields:
        fields["window"] = QuotaWindow.coerce(fields["window"])
    if "overage_behavior" in fields:
        try:
            fields["overage_behavior"] = OverageBehavior.coerce(fields["overage_behavior"])
        except ValueError as exc:
            raise InvalidQuotaPolicy(str(exc)) from exc
    try:
        policy = QuotaPolicy.model_validate(fields)
    except ValidationError as exc:
        raise InvalidQuotaPolicy(f"invalid quota policy: {first_error(exc)}") from exc
    try:
        policy.validate_limits()
    except ConfigurationError as exc:
        raise InvalidQuotaPolicy(exc.detail) from exc
    return policy


class QuotasMixin:
    """``create/get/list/update/delete_quota_policy`` and ``quota_usage`` on the gateway."""

    _quotas: QuotaManager
    _state: StateStore
    _clock: Clock

    async def create_quota_policy(self, policy: QuotaPolicy | Mapping[str, Any]) -> QuotaPolicy:
        """Store a new policy for its (namespace, tenant) and enforce it at once.

        ``policy`` is a ``QuotaPolicy`` or a dict with ``namespace``, ``tenant``,
        ``max_actions``, ``window``, ``overage_behavior`` and optionally
        ``description`` and ``labels``. The stored policy is enabled and stamped
        with the gateway clock. Raises ``QuotaPolicyConflict`` when the pair
        already has a stored policy, ``InvalidQuotaWindow`` / ``InvalidQuotaPolicy``
        for bad input.
        """
        data = policy.model_dump() if isinstance(policy, QuotaPolicy) else dict(policy)
        now = self._clock.now()
        data.update(created_at=now, updated_at=now, enabled=True)
        created = _validated(data)
        key = policy_key(created.id)
        index = index_key(created.namespace, created.tenant)
        # The policy is written before the index is claimed, so an index always names a written
        # policy and a concurrent create can tell a live policy from a dead one.
        await self._state.set(key, created.model_dump_json())
        try:
            claimed = await self._state.check_and_set(index, created.id)
            if not claimed:
                claimed = await self._take_over_stale_index(index, created.id)
        except BaseException:
            await self._state.delete(key)
            raise
        if not claimed:
            await self._state.delete(key)
            raise QuotaPolicyConflict(created.namespace, created.tenant)
        self._quotas.remember(created.namespace, created.tenant, created, now.timestamp())
        return created

    async def _take_over_stale_index(self, index: str, new_id: str) -> bool:
        """An index whose policy is gone (removed by hand, or a delete interrupted) blocks nothing."""
        current = await self._state.get_versioned(index)
        if current is None:
            return await self._state.check_and_set(index, new_id)
        if await self._state.get(policy_key(current[0])) is not None:
            return False
        return (await self._state.compare_and_swap(index, current[1], new_id)).ok

    async def get_quota_policy(self, policy_id: str) -> QuotaPolicy | None:
        """The stored or build-time policy with this id, or ``None``."""
        if not policy_id.startswith("idx:"):
            raw = await self._state.get(policy_key(policy_id))
            if raw is not None:
                return QuotaPolicy.model_validate_json(raw)
        return self._static_by_id(policy_id)

    def _static_by_id(self, policy_id: str) -> QuotaPolicy | None:
        for policy in self._quotas.static.values():
            if policy.id == policy_id:
                return policy
        return None

    async def list_quota_policies(
        self,
        *,
        namespace: str | None = None,
        tenant: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[QuotaPolicy]:
        """Policies ordered by namespace, tenant and creation, optionally filtered by pair.

        Build-time policies are listed unless a stored policy overrides them.
        """
        indexed: set[str] = set()
        candidates: list[tuple[str, str]] = []
        for key, raw in await self._state.scan_keys("_system", "_quotas", "quota"):
            if key[len(POLICY_PREFIX):].startswith("idx:"):
                indexed.add(raw)
            else:
                candidates.append((key, raw))
        stored: list[QuotaPolicy] = []
        for key, raw in candidates:
            if key[len(POLICY_PREFIX):] not in indexed:
                continue  # a create that lost its race (or died) before claiming the index
            try:
                stored.append(QuotaPolicy.model_validate_json(raw))
            except ValidationError as exc:
                _log.warning("skipping corrupt quota policy %s: %s", key, exc)
        stored_pairs = {(p.namespace, p.tenant) for p in stored}
        every = stored + [p for pair, p in self._quotas.static.items() if pair not in stored_pairs]
        selected = [
            p for p in every
            if (namespace is None or p.namespace == namespace) and (tenant is None or p.tenant == tenant)
        ]
        selected.sort(key=lambda p: (p.namespace, p.tenant, p.created_at, p.id))
        return selected[max(offset, 0): max(offset, 0) + max(limit, 0)]

    async def update_quota_policy(
        self,
        policy_id: str,
        *,
        max_actions: int | None = None,
        window: QuotaWindow | str | int | Mapping[str, Any] | None = None,
        overage_behavior: OverageBehavior | str | Mapping[str, Any] | None = None,
        enabled: bool | None = None,
        description: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> QuotaPolicy:
        """Change some fields of a policy (``None`` leaves a field as it is).

        Namespace and tenant never change. Raises ``QuotaPolicyNotFound``.
        """
        given: dict[str, Any] = {
            "max_actions": max_actions, "window": window, "overage_behavior": overage_behavior,
            "enabled": enabled, "description": description, "labels": None if labels is None else dict(labels),
        }
        changes = {name: value for name, value in given.items() if value is not None}
        now = self._clock.now()
        key = policy_key(policy_id)
        while True:
            current = None if policy_id.startswith("idx:") else await self._state.get_versioned(key)
            if current is None:
                return self._update_static(policy_id, changes)
            updated = _validated({**QuotaPolicy.model_validate_json(current[0]).model_dump(), **changes,
                                  "updated_at": now})
            # Compare-and-swap: two concurrent updates never lose each other's fields.
            if (await self._state.compare_and_swap(key, current[1], updated.model_dump_json())).ok:
                break
        self._quotas.remember(updated.namespace, updated.tenant, updated, now.timestamp())
        return updated

    def _update_static(self, policy_id: str, changes: dict[str, Any]) -> QuotaPolicy:
        policy = self._static_by_id(policy_id)
        if policy is None:
            raise QuotaPolicyNotFound(policy_id)
        updated = _validated({**policy.model_dump(), **changes, "updated_at": self._clock.now()})
        self._quotas.static[(updated.namespace, updated.tenant)] = updated
        self._quotas.forget(updated.namespace, updated.tenant)
        return updated

    async def delete_quota_policy(self, policy_id: str) -> None:
        """Remove a policy, its index entry and its cached copy. Raises ``QuotaPolicyNotFound``."""
        key = policy_key(policy_id)
        raw = None if policy_id.startswith("idx:") else await self._state.get(key)
        if raw is None:
            static = self._static_by_id(policy_id)
            if static is None:
                raise QuotaPolicyNotFound(policy_id)
            del self._quotas.static[(static.namespace, static.tenant)]
            self._quotas.forget(static.namespace, static.tenant)
            return
        try:
            policy = QuotaPolicy.model_validate_json(raw)
        except ValidationError as exc:
            _log.warning("deleting corrupt quota policy %s (%s); its index entry is left", key, exc)
        else:
            # Index first: the pair is free at once, and an index never names a deleted policy.
            index = index_key(policy.namespace, policy.tenant)
            if await self._state.get(index) == policy_id:
                await self._state.delete(index)
            self._quotas.forget(policy.namespace, policy.tenant)
        await self._state.delete(key)

    async def quota_usage(self, namespace: str, tenant: str) -> QuotaUsage | None:
        """Usage of the pair's policy in the current window, or ``None`` when it has no policy."""
        now = self._clock.now()
        policy = await self._quotas.load_stored(namespace, tenant)
        if policy is None:
            policy = self._quotas.static.get((namespace, tenant))
            if policy is None:
                return None
        used, bucket = await self._quotas.used(policy, now)
        return QuotaUsage(
            tenant=tenant,
            namespace=namespace,
            used=used,
            limit=policy.max_actions,
            remaining=max(policy.max_actions - used, 0),
            window=policy.window,
            resets_at=bucket.end,
            overage_behavior=policy.overage_behavior,
        )


__all__ = ["QuotasMixin"]
