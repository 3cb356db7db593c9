"""Dead-letter queue: actions whose retryable failures exhausted their retries."""

from __future__ import annotations

import builtins
import threading
from collections import deque
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
