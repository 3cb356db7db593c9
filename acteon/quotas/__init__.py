"""Tenant quotas: at most ``max_actions`` dispatches per window for a (namespace, tenant).

::

    gw = AsyncGateway(..., quota_policies=[
        {"namespace": "notifications", "tenant": "acme", "max_actions": 1000,
         "window": "daily", "overage_behavior": "block"},
    ])
    await gw.create_quota_policy({...})          # stored, shared by every process
    usage = await gw.quota_usage("notifications", "acme")

See docs/quotas.md. Enforcement: :mod:`acteon.quotas._enforce`; management
methods: :mod:`acteon.quotas._api`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from acteon.quotas._enforce import (
    NOTIFICATION_ACTION_TYPE,
    QuotaManager,
    coerce_policies,
    index_key,
    policy_key,
    quota_exempt,
)
from acteon.quotas._model import (
    InvalidQuotaPolicy,
    InvalidQuotaWindow,
    OverageBehavior,
    QuotaPolicy,
    QuotaPolicyConflict,
    QuotaPolicyNotFound,
    QuotaUsage,
    QuotaWindow,
    WindowBucket,
)

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway


def attach(gateway: AsyncGateway, options: dict[str, Any]) -> None:
    """Register the quota admission hook; ``options["quota_policies"]`` are the build-time policies."""
    manager = QuotaManager(gateway, coerce_policies(options.get("quota_policies"), gateway._clock.now()))
    gateway._quotas = manager
    gateway._admission_hooks.append(manager.admit)


__all__ = [
    "NOTIFICATION_ACTION_TYPE",
    "InvalidQuotaPolicy",
    "InvalidQuotaWindow",
    "OverageBehavior",
    "QuotaPolicy",
    "QuotaPolicyConflict",
    "QuotaPolicyNotFound",
    "QuotaUsage",
    "QuotaWindow",
    "WindowBucket",
    "attach",
    "index_key",
    "policy_key",
    "quota_exempt",
]
