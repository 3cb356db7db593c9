"""acteon: an embeddable action gateway.

Rules decide what happens to each action (suppress, deduplicate, throttle,
reroute, modify, ...), providers execute it with retries, circuit breakers and
a dead-letter queue, and every outcome lands in an audit trail.
"""

from acteon._action import Action
from acteon._caller import Caller
from acteon._clock import Clock, SystemClock
from acteon._events import EventFilter, StreamEvent, Subscription
from acteon._exceptions import (
    ActeonError,
    ApprovalAlreadyDecided,
    ApprovalExpired,
    ApprovalNotFound,
    ApprovalSignatureError,
    AuditError,
    AuditSerializationError,
    AuditStorageError,
    CasConflictError,
    ChainError,
    ConfigurationError,
    EntityNotFoundError,
    GatewayError,
    LockContention,
    LockExpired,
    LockFailed,
    MissingDependencyError,
    NotSupportedError,
    ProviderConfigurationError,
    ProviderConnectionError,
    ProviderError,
    ProviderExecutionFailed,
    ProviderHTTPError,
    ProviderNotFound,
    ProviderNotFoundError,
    ProviderRateLimited,
    ProviderSerializationError,
    ProviderTimeout,
    RuleError,
    RuleEvaluationError,
    RuleLoadError,
    SerializationError,
    StateBackendError,
    StateConnectionError,
    StateError,
    StateSerializationError,
    StateTimeout,
    UsageError,
)
from acteon._executor import ExecutorConfig
from acteon._gateway import AsyncGateway
from acteon._response import ProviderResponse
from acteon._retry import RetryStrategy
from acteon._settings import ExecutorSettings, GatewayConfig
from acteon._sync import Gateway
from acteon.outcomes import Outcome, OutcomeFailure
from acteon.workflows._approval_model import Approval, ApprovalLinks

__all__ = [
    "ActeonError",
    "Action",
    "Approval",
    "ApprovalAlreadyDecided",
    "ApprovalExpired",
    "ApprovalLinks",
    "ApprovalNotFound",
    "ApprovalSignatureError",
    "AsyncGateway",
    "AuditError",
    "AuditSerializationError",
    "AuditStorageError",
    "Caller",
    "CasConflictError",
    "ChainError",
    "Clock",
    "ConfigurationError",
    "EntityNotFoundError",
    "EventFilter",
    "ExecutorConfig",
    "ExecutorSettings",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
    "LockContention",
    "LockExpired",
    "LockFailed",
    "MissingDependencyError",
    "NotSupportedError",
    "Outcome",
    "OutcomeFailure",
    "ProviderConfigurationError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderExecutionFailed",
    "ProviderHTTPError",
    "ProviderNotFound",
    "ProviderNotFoundError",
    "ProviderRateLimited",
    "ProviderResponse",
    "ProviderSerializationError",
    "ProviderTimeout",
    "RetryStrategy",
    "RuleError",
    "RuleEvaluationError",
    "RuleLoadError",
    "SerializationError",
    "StateBackendError",
    "StateConnectionError",
    "StateError",
    "StateSerializationError",
    "StateTimeout",
    "StreamEvent",
    "Subscription",
    "SystemClock",
    "UsageError",
]
