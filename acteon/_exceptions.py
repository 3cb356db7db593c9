"""Every exception acteon raises on purpose.

::

    ActeonError
    ├── ConfigurationError             bad options, builder validation, unknown URL scheme
    │   └── MissingDependencyError     an optional extra is not installed (names the extra)
    ├── UsageError                     API misuse (sync twin outside ``with``, called from its own loop)
    ├── NotSupportedError              a verdict or feature this version does not implement yet
    ├── SerializationError             a payload or record could not be encoded or decoded
    ├── RuleError                      rule loading or evaluation failed
    │   ├── RuleLoadError              YAML/CEL did not load; names file, rule and key
    │   └── RuleEvaluationError        evaluation failed for one action; names rule and field
    ├── StateError                     a state store could not do its job
    │   ├── StateConnectionError
    │   ├── StateTimeout
    │   ├── CasConflictError
    │   ├── LockContention
    │   ├── LockExpired
    │   └── StateBackendError
    ├── LockFailed                     the dispatch lock could not be taken in time
    ├── AuditError                     an audit store could not record or query
    │   └── ImmutableViolation         compliance mode refused a deletion
    ├── GatewayError                   a verdict handler could not complete
    │   ├── ProviderNotFoundError      reroute to an unregistered provider
    │   ├── GroupNotFound, GroupNotPending (grouping); EventNotFound, InvalidTransition (state machines)
    │   ├── ChainError / ApprovalNotFound / ApprovalAlreadyDecided (workflows)
    │   └── ApprovalSignatureError, ApprovalExpired (ApprovalNotFound with a reason)
    └── ProviderError                  a provider failed; ``.retryable`` and ``.code`` drive retries
        ├── ProviderNotFound, ProviderExecutionFailed, ProviderTimeout,
        ├── ProviderConnectionError, ProviderConfigurationError,
        └── ProviderRateLimited, ProviderSerializationError

``str()`` of each class keeps the upstream display text (core-pipeline.md §2).
"""

from __future__ import annotations

from typing import ClassVar

from acteon._timefmt import format_rust_duration


class ActeonError(Exception):
    """Root of everything acteon raises on purpose."""


class ConfigurationError(ActeonError):
    """Invalid configuration (``configuration error: ...``)."""

    def __init__(self, message: str) -> None:
        self.detail = message
        super().__init__(f"configuration error: {message}")


class MissingDependencyError(ConfigurationError):
    """An optional extra is needed: the message names the ``pip install`` line."""

    def __init__(self, extra: str, feature: str) -> None:
        self.extra = extra
        super().__init__(f"{feature} needs the '{extra}' extra: pip install 'acteon[{extra}]'")


class UsageError(ActeonError):
    """The API was used in a way it does not support."""


class NotSupportedError(ActeonError):
    """A verdict or feature that this version of acteon does not implement yet."""


class SerializationError(ActeonError):
    """A value could not be encoded or decoded (``serialization error: ...``)."""

    def __init__(self, message: str) -> None:
        self.detail = message
        super().__init__(f"serialization error: {message}")


# --------------------------------------------------------------------------- rules


class RuleError(ActeonError):
    """Rule loading or evaluation failed."""


class RuleLoadError(RuleError):
    """A rule file or text did not load.

    The message keeps the upstream text (``parse error: ...``) and adds where:
    the file, the rule and the key, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        rule: str | None = None,
        key: str | None = None,
    ) -> None:
        self.detail = message
        self.file = file
        self.rule = rule
        self.key = key
        where = []
        if file is not None:
            where.append(f"file {file}")
        if rule is not None:
            where.append(f"rule '{rule}'")
        if key is not None:
            where.append(f"key '{key}'")
        text = message if not where else f"{message} ({', '.join(where)})"
        super().__init__(text)


class RuleEvaluationError(RuleError):
    """A rule could not be evaluated for an action (fails closed, DECISIONS D9).

    ``str()`` starts with the engine's message (``type error: ...``,
    ``undefined variable: ...``) followed by the rule and field it came from.
    """

    def __init__(self, message: str, *, rule: str | None = None, field: str | None = None) -> None:
        self.detail = message
        self.rule = rule
        self.field = field
        where = []
        if rule is not None:
            where.append(f"rule '{rule}'")
        if field is not None:
            where.append(f"field {field}")
        text = message if not where else f"{message} (in {', '.join(where)})"
        super().__init__(text)


# --------------------------------------------------------------------------- state


class StateError(ActeonError):
    """A state store could not do its job."""


class StateConnectionError(StateError):
    def __init__(self, message: str) -> None:
        super().__init__(f"connection error: {message}")


class StateTimeout(StateError):
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(f"operation timed out after {format_rust_duration(timeout)}")


class CasConflictError(StateError):
    def __init__(self, expected: int, found: int) -> None:
        self.expected = expected
        self.found = found
        super().__init__(f"CAS conflict: expected version {expected}, found {found}")


class LockContention(StateError):
    def __init__(self, message: str) -> None:
        super().__init__(f"lock contention: {message}")


class LockExpired(StateError):
    def __init__(self, message: str) -> None:
        super().__init__(f"lock expired: {message}")


class StateSerializationError(StateError):
    def __init__(self, message: str) -> None:
        super().__init__(f"serialization error: {message}")


class StateBackendError(StateError):
    def __init__(self, message: str) -> None:
        super().__init__(f"backend error: {message}")


class LockFailed(ActeonError):
    """The dispatch (or state-machine) lock could not be taken in time."""

    def __init__(self, message: str) -> None:
        super().__init__(f"lock acquisition failed: {message}")


class AuditError(ActeonError):
    """An audit store could not record or query (``storage error: ...``)."""


class AuditStorageError(AuditError):
    def __init__(self, message: str) -> None:
        super().__init__(f"storage error: {message}")


class AuditSerializationError(AuditError):
    def __init__(self, message: str) -> None:
        super().__init__(f"serialization error: {message}")


class ImmutableViolation(AuditError):
    """A compliance store with ``immutable_audit`` refused to delete records (D21)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"immutable audit violation: {message}")


# --------------------------------------------------------------------------- gateway


class GatewayError(ActeonError):
    """A verdict handler could not complete (the dispatch raises instead of returning)."""


class ProviderNotFoundError(GatewayError, LookupError):
    """A reroute names a provider that is not registered."""

    def __init__(self, name: str) -> None:
        self.provider = name
        super().__init__(f"provider not found: {name}")


class GroupNotFound(GatewayError, LookupError):
    """No group with this key (or id) in the scope asked for."""

    def __init__(self, group: str) -> None:
        self.group = group
        super().__init__(f"group not found: {group}")


class GroupNotPending(GatewayError):
    """A manual flush of a group that has nothing to send, or that another flush is sending."""

    def __init__(self) -> None:
        super().__init__("group already notified or not in pending state")


class EventNotFound(GatewayError, LookupError):
    """No state-machine event with this fingerprint in the scope asked for."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        super().__init__(f"event not found: {fingerprint}")


class InvalidTransition(GatewayError):
    """A manual transition the event's state machine does not allow (DECISIONS D17)."""

    def __init__(self, machine: str, from_state: str, to_state: str) -> None:
        self.state_machine = machine
        self.from_state = from_state
        self.to_state = to_state
        super().__init__(
            f"invalid transition: state machine '{machine}' has no transition from '{from_state}' to '{to_state}'"
        )


class ChainError(GatewayError):
    def __init__(self, message: str) -> None:
        super().__init__(f"chain error: {message}")


class ApprovalNotFound(GatewayError):
    def __init__(self) -> None:
        super().__init__("approval not found")


class ApprovalAlreadyDecided(GatewayError):
    def __init__(self, status: str) -> None:
        self.status = status
        super().__init__(f"approval already decided: {status}")


class ApprovalSignatureError(ApprovalNotFound):
    """An approval link whose signature, key id or decision does not verify.

    ``str()`` keeps upstream's ``approval not found`` (HTTP 404, so a forged link
    learns nothing); ``reason`` and the exception note say what was wrong.
    """

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason
        self.add_note(reason)


class ApprovalExpired(ApprovalNotFound):
    """An approval link used at or after its ``expires_at`` (checked against the clock, D15)."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason
        self.add_note(reason)


class EntityNotFoundError(UsageError, LookupError):
    """An entity subscription names a chain or group that does not exist in that scope."""


# --------------------------------------------------------------------------- providers


class ProviderError(ActeonError):
    """A provider failed. ``retryable`` decides retries, DLQ and breaker counting (D22)."""

    retryable: ClassVar[bool] = False
    code: ClassVar[str] = "EXECUTION_FAILED"
    prefix: ClassVar[str] = "execution failed: "

    def __init__(self, message: str = "") -> None:
        self.detail = message
        super().__init__(f"{self.prefix}{message}")


class ProviderNotFound(ProviderError):
    code = "NOT_FOUND"
    prefix = "provider not found: "


class ProviderExecutionFailed(ProviderError):
    code = "EXECUTION_FAILED"
    prefix = "execution failed: "


class ProviderTimeout(ProviderError):
    retryable = True
    code = "TIMEOUT"
    prefix = "timeout after "

    def __init__(self, timeout: float = 0.0) -> None:
        self.timeout = timeout
        super().__init__(format_rust_duration(timeout))


class ProviderConnectionError(ProviderError):
    retryable = True
    code = "CONNECTION"
    prefix = "connection error: "


class ProviderConfigurationError(ProviderError):
    code = "CONFIGURATION"
    prefix = "invalid configuration: "


class ProviderRateLimited(ProviderError):
    retryable = True
    code = "RATE_LIMITED"
    prefix = "rate limited"

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__("" if not message else f": {message}")


class ProviderSerializationError(ProviderError):
    code = "SERIALIZATION"
    prefix = "serialization error: "


class ProviderHTTPError(ProviderError):
    """An HTTP provider got a non-success status (D22 classifies it by status code)."""

    prefix = "http status "

    def __init__(self, status_code: int, body: object = None) -> None:
        self.status_code = status_code
        self.body = body
        super().__init__(str(status_code))

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status_code in (408, 425, 429) or self.status_code >= 500

    @property
    def code(self) -> str:  # type: ignore[override]
        if self.status_code == 429:
            return "RATE_LIMITED"
        return "HTTP_ERROR"
