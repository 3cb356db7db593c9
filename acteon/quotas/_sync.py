"""Blocking twins of the quota and budget methods, mixed into ``acteon.Gateway``.

Each forwards to the ``AsyncGateway`` on the gateway's loop thread, so
behaviour and exceptions are those of the async methods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from acteon.budget._model import BudgetPolicy, BudgetStatus
from acteon.quotas._model import OverageBehavior, QuotaPolicy, QuotaUsage, QuotaWindow

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway


class QuotasSyncMixin:
    """Blocking ``create/get/list/update/delete_quota_policy``, ``quota_usage`` and budget methods."""

    # Provided by Gateway: run a coroutine function / a plain function on the loop thread.
    _async: AsyncGateway
    _call: Callable[..., Any]
    _call_sync: Callable[..., Any]

    def create_quota_policy(self, policy: QuotaPolicy | Mapping[str, Any]) -> QuotaPolicy:
        result: QuotaPolicy = self._call(self._async.create_quota_policy, policy)
        return result

    def get_quota_policy(self, policy_id: str) -> QuotaPolicy | None:
        result: QuotaPolicy | None = self._call(self._async.get_quota_policy, policy_id)
        return result

    def list_quota_policies(
        self,
        *,
        namespace: str | None = None,
        tenant: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[QuotaPolicy]:
        result: list[QuotaPolicy] = self._call(
            self._async.list_quota_policies, namespace=namespace, tenant=tenant, limit=limit, offset=offset
        )
        return result

    def update_quota_policy(
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
        result: QuotaPolicy = self._call(
            self._async.update_quota_policy,
            policy_id,
            max_actions=max_actions,
            window=window,
            overage_behavior=overage_behavior,
            enabled=enabled,
            description=description,
            labels=labels,
        )
        return result

    def delete_quota_policy(self, policy_id: str) -> None:
        self._call(self._async.delete_quota_policy, policy_id)

    def quota_usage(self, namespace: str, tenant: str) -> QuotaUsage | None:
        result: QuotaUsage | None = self._call(self._async.quota_usage, namespace, tenant)
        return result

    def budget_status(self, namespace: str, tenant: str) -> BudgetStatus:
        result: BudgetStatus = self._call(self._async.budget_status, namespace, tenant)
        return result

    def list_budgets(self) -> list[BudgetPolicy]:
        result: list[BudgetPolicy] = self._call_sync(self._async.list_budgets)
        return result

    def set_budget(self, budget: BudgetPolicy | Mapping[str, Any]) -> BudgetPolicy:
        result: BudgetPolicy = self._call_sync(self._async.set_budget, budget)
        return result

    def remove_budget(self, namespace: str, tenant: str) -> bool:
        result: bool = self._call_sync(self._async.remove_budget, namespace, tenant)
        return result
