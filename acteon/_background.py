"""Running background jobs: one tick, per-job isolation, per-job intervals.

A background job is ``async fn(now) -> int`` registered in ``gateway._jobs``
under a name; it does what is due at ``now`` and returns how many items it
handled. ``AsyncGateway.tick()`` runs every job once through :func:`run_jobs`;
the ``async with`` loop calls ``tick()`` every ``background_interval_seconds``.

Guarantees:

- one failing job never stops the others: its exception is logged with the
  traceback and reported in :attr:`TickSummary.errors`, and the next tick runs
  it again;
- a job that should not run on every tick wraps itself with :func:`every`,
  which skips calls until its interval (measured on the gateway clock) passed;
- jobs must be idempotent and claim their items (``acteon._claims``) so several
  processes may tick the same store at once and each item is handled once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

_log = logging.getLogger("acteon.background")

Job = Callable[[datetime], Awaitable[int]]


class TickSummary(dict[str, int]):
    """``{job_name: items_handled}`` for one tick; failed jobs are in :attr:`errors`.

    A failed job's count is 0 in the mapping, so the summary can be summed safely.
    """

    errors: dict[str, BaseException]

    def __init__(self) -> None:
        super().__init__()
        self.errors = {}

    @property
    def ok(self) -> bool:
        return not self.errors


async def run_job(summary: TickSummary, name: str, job: Job, now: datetime) -> None:
    """Run one job into ``summary``; an ``Exception`` is logged and recorded, not raised."""
    try:
        summary[name] = int(await job(now))
    except Exception as exc:  # a job may fail in any way; the next tick retries it
        _log.exception("background job %r failed", name)
        summary[name] = 0
        summary.errors[name] = exc


async def run_jobs(jobs: Mapping[str, Job], now: datetime, summary: TickSummary | None = None) -> TickSummary:
    """Run each job once, in registration order, isolated from the others' failures."""
    if summary is None:
        summary = TickSummary()
    for name, job in list(jobs.items()):
        await run_job(summary, name, job, now)
    return summary


def every(seconds: float, job: Job) -> Job:
    """A job that runs at its first call and then at most once per ``seconds`` of clock time.

    Used for sweeps with their own cadence (upstream's 60 s cleanup tick) while
    ``tick()`` itself may be called far more often. The due time is kept per
    process: two processes may each run the sweep once per interval, so the
    wrapped job must still claim its items.
    """
    due: list[float] = []

    async def run(now: datetime) -> int:
        t = now.timestamp()
        if due and t < due[0]:
            return 0
        due[:] = [t + seconds]
        return await job(now)

    run.__name__ = getattr(job, "__name__", "job")
    run.__qualname__ = f"every({seconds}, {run.__name__})"
    return run
