"""Dead-letter queue: actions whose retryable failures exhausted their retries."""

from __future__ import annotations

import builtins
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from acteon._action import Action
from acteon._timefmt import format_rfc3339


@dataclass(slots=True)
class DeadLetter:
    action: Action
    error: str
    attempts: int
    timestamp: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.to_wire(),
            "error": self.error,
            "attempts": self.attempts,
            "timestamp": format_rfc3339(self.timestamp),
        }


class DeadLetterQueue:
    """In-memory FIFO; ``push``, ``list``, ``drain``, ``len``. Thread-safe."""

    def __init__(self, max_entries: int | None = None) -> None:
        self._entries: deque[DeadLetter] = deque(maxlen=max_entries)
        self._mutex = threading.Lock()

    def push(self, entry: DeadLetter) -> None:
        captured = _captured.get()
        if captured is not None:
            captured.append(entry)
            return
        with self._mutex:
            self._entries.append(entry)

    def list(self) -> builtins.list[DeadLetter]:
        with self._mutex:
            return list(self._entries)

    def drain(self) -> builtins.list[DeadLetter]:
        with self._mutex:
            out = list(self._entries)
            self._entries.clear()
        return out

    def __len__(self) -> int:
        return len(self._entries)

    def is_empty(self) -> bool:
        return not self._entries


_captured: ContextVar[builtins.list[DeadLetter] | None] = ContextVar("acteon_dlq_capture", default=None)


@contextmanager
def capture_dead_letters() -> Iterator[builtins.list[DeadLetter]]:
    """Hold back dead letters pushed in this context (task) and hand them to the caller.

    The chain engine runs a step's action inside it, then decides by the step's
    and the chain's failure policy whether the failure is dead-lettered -- once.
    """
    letters: builtins.list[DeadLetter] = []
    token = _captured.set(letters)
    try:
        yield letters
    finally:
        _captured.reset(token)
