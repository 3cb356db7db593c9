"""Config-file sections of quotas and cost-aware routing.

::

    [quotas]
    [[quotas.policies]]
    namespace = "notifications"
    tenant = "acme"
    max_actions = 1000
    window = "daily"                       # hourly/daily/weekly/monthly or seconds ("7200")
    overage_behavior = "block"             # "warn", { degrade = { fallback_provider = "sms-cheap" } }, ...

    [[providers]]
    name = "email-premium"
    type = "webhook"
    cost = 0.01                            # per executed action (cost-aware routing)

    [[budgets]]
    namespace = "notifications"
    tenant = "acme"
    limit = 50.0
    window = "monthly"
    downgrade = { "email-premium" = "email-basic" }
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from acteon._exceptions import ConfigurationError

# `enabled`, `default_window` and `default_overage_behavior` are upstream keys: accepted, not needed
# (stored policies are always read on demand; upstream never used the two defaults).
_QUOTA_KEYS = {"enabled", "default_window", "default_overage_behavior", "policies"}


def _tables(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigurationError(f"{where} must be an array of tables")
    return [dict(v) for v in value]


def quota_and_budget_kwargs(data: Mapping[str, Any], provider_costs: Mapping[str, Any]) -> dict[str, Any]:
    """Gateway keyword arguments from ``[quotas]``, ``[[budgets]]`` and the providers' ``cost`` keys."""
    out: dict[str, Any] = {}
    quotas = data.get("quotas")
    if quotas is not None:
        if not isinstance(quotas, Mapping):
            raise ConfigurationError("[quotas] must be a table")
        unknown = set(quotas) - _QUOTA_KEYS
        if unknown:
            raise ConfigurationError(f"unknown [quotas] keys: {', '.join(sorted(unknown))}")
        if "policies" in quotas:
            out["quota_policies"] = _tables(quotas["policies"], "[[quotas.policies]]")
    if "budgets" in data:
        out["budgets"] = _tables(data["budgets"], "[[budgets]]")
    if provider_costs:
        out["provider_costs"] = dict(provider_costs)
    return out
