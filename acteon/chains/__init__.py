"""Task chains: multi-step workflows started by the ``chain`` rule verdict.

A chain definition lists steps; each step sends an action to a provider (or
waits on a timer or a signal, runs a parallel group, or runs another chain),
its payload rendered from the origin action and earlier results. Steps run
one per background tick, on whichever process claims the chain. See
``docs/chains.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from acteon.chains._model import (
    BranchCondition,
    ChainConfig,
    ChainConfigError,
    ChainStepConfig,
    OnCancel,
    ParallelConfig,
    RetryPolicy,
    SignalConfig,
    TimerConfig,
)
from acteon.chains._state import ChainState, StepResult
from acteon.chains._templates import TemplateContext, render
from acteon.chains._views import ChainDetail, ChainStepInfo, ChainSummary

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway

__all__ = [
    "BranchCondition",
    "ChainConfig",
    "ChainConfigError",
    "ChainDetail",
    "ChainState",
    "ChainStepConfig",
    "ChainStepInfo",
    "ChainSummary",
    "OnCancel",
    "ParallelConfig",
    "RetryPolicy",
    "SignalConfig",
    "StepResult",
    "TemplateContext",
    "TimerConfig",
    "attach",
    "render",
]


def attach(gateway: AsyncGateway, options: dict[str, Any]) -> None:
    """Register the ``chain`` verdict handler and the ``chains`` background job."""
    from acteon.chains._engine import ChainEngine

    engine = ChainEngine(gateway, options.get("chains"))
    gateway._chains = engine
    gateway._verdict_handlers["chain"] = engine.handle_verdict
    gateway._jobs["chains"] = engine.run_due
    gateway._entity_catchup["chain"] = engine.catchup
