"""Claim a unit of background work so that exactly one process does it.

Several processes may run the same background jobs against one shared state
store (a SQLite file, a Redis server). Each job finds the same due items -- an
expired approval, a group to flush, a timeout to fire -- and must act on each
one once. The rule is: **claim before acting**. A claim is a state entry created
with the store's atomic "set if absent" (:meth:`StateStore.check_and_set`), so
of all processes trying the same claim key exactly one wins.

Life of a claim::

    owner = new_owner()
    if await claim(state, key, owner, ttl=300):
        try:
            ...do the work...
        except BaseException:
            await release(state, key, owner)      # failed: let someone retry
            raise
        await complete(state, key, owner, ttl=86400)  # done: nobody redoes it
    # lost: another process has it (or did it); skip the item

- ``ttl`` of the claim bounds how long a crashed owner blocks the item: after it,
  the claim vanishes and another process may take the item again. Pick it longer
  than the work can take.
- :func:`complete` turns the claim into a ``done:`` marker that lives for
  ``ttl`` more seconds, so the item is not redone while its trigger (an index
  entry, a due time) may still be visible to other processes. Jobs that delete
  their trigger in the same step may skip it and keep the claim as is.
- :func:`release` deletes the claim only while it still holds this owner's
  value, so a late release never frees a claim another process has since taken.

:func:`claimed` wraps the above in an ``async with``. Claim keys are ordinary
canonical state keys; use a dedicated kind (``group_flush_claim``,
``approval_retry_claim``, ...) or the ``{key}:claim`` convention of approvals.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from acteon.state._base import StateStore
from acteon.state._keys import KeyLike

DONE_PREFIX = "done:"


def new_owner(label: str = "") -> str:
    """A claim owner id unique to this process and call: ``host:pid:random[:label]``."""
    base = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    return f"{base}:{label}" if label else base


async def claim(state: StateStore, key: KeyLike, owner: str, ttl: float) -> bool:
    """Try to take ``key`` for ``owner`` for ``ttl`` seconds; ``True`` for the one winner."""
    return await state.check_and_set(key, owner, ttl)


async def holder(state: StateStore, key: KeyLike) -> str | None:
    """The value stored in the claim (an owner, ``done:{owner}``) or ``None``."""
    return await state.get(key)


async def release(state: StateStore, key: KeyLike, owner: str) -> bool:
    """Give a claim up so the work can be retried; ``False`` if ``owner`` no longer holds it.

    The store has no conditional delete, so this reads then deletes. The window in
    between only matters if the claim expired and was re-taken in that instant,
    which a ``ttl`` longer than the work rules out.
    """
    current = await state.get(key)
    if current != owner:
        return False
    return await state.delete(key)


async def complete(state: StateStore, key: KeyLike, owner: str, ttl: float) -> bool:
    """Mark the claimed work done for ``ttl`` seconds (a compare-and-swap on the claim).

    ``False`` when ``owner`` no longer holds the claim -- it expired during the
    work and someone else may have taken it, which the caller should log.
    """
    current = await state.get_versioned(key)
    if current is None or current[0] != owner:
        return False
    result = await state.compare_and_swap(key, current[1], DONE_PREFIX + owner, ttl)
    return result.ok


def is_done(value: str | None) -> bool:
    """Whether a claim value (from :func:`holder`) marks finished work."""
    return value is not None and value.startswith(DONE_PREFIX)


@asynccontextmanager
async def claimed(
    state: StateStore,
    key: KeyLike,
    *,
    ttl: float,
    owner: str | None = None,
    done_ttl: float | None = None,
) -> AsyncIterator[bool]:
    """``async with claimed(store, key, ttl=60) as won: if won: ...``

    Yields ``True`` to the one process that won the claim. When the block raises,
    the claim is released (someone may retry); when it ends normally the claim is
    kept -- as a ``done:`` marker for ``done_ttl`` seconds if given, else until its
    ``ttl`` runs out.
    """
    who = owner or new_owner()
    if not await claim(state, key, who, ttl):
        yield False
        return
    try:
        yield True
    except BaseException:
        # Shielded: a cancelled job must still give its claim back.
        with anyio.CancelScope(shield=True):
            await release(state, key, who)
        raise
    if done_ttl is not None:
        await complete(state, key, who, done_ttl)
