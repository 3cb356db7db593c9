"""Wiring of optional gateway features (workflows, scheduling, resilience).

Each feature lives in its own module and exposes ``attach(gateway)``, which
registers its verdict handlers, admission hooks and background jobs on the
gateway (``_verdict_handlers``, ``_admission_hooks``, ``_jobs``) and keeps its
own state object on the gateway. ``AsyncGateway.__init__`` calls
:func:`attach_features` once; the order below is the order hooks run in.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway

FEATURE_MODULES: list[str] = [
    # one line per feature module, e.g. "acteon.workflows.grouping",
    "acteon.workflows.approvals",
    "acteon.rules._watch",
    "acteon.resilience",
    "acteon.quotas",
    "acteon.budget",
    "acteon.scheduling",
    "acteon.workflows.grouping",
    "acteon.workflows.state_machines",
    "acteon.chains",
]


def attach_features(gateway: AsyncGateway, options: dict[str, Any]) -> None:
    """Attach every feature. ``options`` are the gateway's feature keyword arguments."""
    for name in FEATURE_MODULES:
        module = importlib.import_module(name)
        module.attach(gateway, options)
