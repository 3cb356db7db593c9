"""State keys: ``{namespace}:{tenant}:{kind}:{id}``."""

from __future__ import annotations

from enum import StrEnum


class KeyKind(StrEnum):
    """The ``kind`` segment of a state key (state-audit.md A1); any other string is a custom kind."""

    DEDUP = "dedup"
    COUNTER = "counter"
    LOCK = "lock"
    STATE = "state"
    HISTORY = "history"
    RATE_LIMIT = "rate_limit"
    EVENT_STATE = "event_state"
    EVENT_TIMEOUT = "event_timeout"
    GROUP = "group"
    PENDING_GROUPS = "pending_groups"
    ACTIVE_EVENTS = "active_events"
    APPROVAL = "approval"
    PENDING_APPROVALS = "pending_approvals"
    CHAIN = "chain"
    PENDING_CHAINS = "pending_chains"
    SCHEDULED_ACTION = "scheduled_action"
    PENDING_SCHEDULED = "pending_scheduled"
    RECURRING_ACTION = "recurring_action"
    PENDING_RECURRING = "pending_recurring"
    QUOTA = "quota"
    QUOTA_USAGE = "quota_usage"
    RETENTION = "retention"
    CIRCUIT_BREAKER = "circuit_breaker"
    CHAIN_DEFINITION = "chain_def"


class StateKey:
    """A four-part key; ``str(key)`` and ``key.canonical`` give the canonical form.

    ``id`` may contain ``:``; namespace, tenant and kind may not (checked here,
    so canonical keys always split back with ``split(":", 3)``).
    """

    __slots__ = ("canonical", "id", "kind", "namespace", "tenant")

    def __init__(self, namespace: str, tenant: str, kind: str, id: str) -> None:
        if ":" in namespace or ":" in tenant:
            raise ValueError(f"namespace and tenant must not contain ':' ({namespace!r}, {tenant!r})")
        self.namespace = namespace
        self.tenant = tenant
        self.kind = str(kind)
        self.id = id
        self.canonical = f"{namespace}:{tenant}:{self.kind}:{id}"

    @classmethod
    def parse(cls, canonical: str) -> StateKey:
        parts = canonical.split(":", 3)
        if len(parts) != 4:
            raise ValueError(f"not a canonical state key: {canonical!r}")
        return cls(parts[0], parts[1], parts[2], parts[3])

    def __str__(self) -> str:
        return self.canonical

    def __repr__(self) -> str:
        return f"StateKey({self.canonical!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StateKey) and other.canonical == self.canonical

    def __hash__(self) -> int:
        return hash(self.canonical)


KeyLike = StateKey | str


def canonical(key: KeyLike) -> str:
    """Canonical string of a :class:`StateKey` or an already-canonical string."""
    return key if isinstance(key, str) else key.canonical
