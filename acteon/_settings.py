"""``GatewayConfig``: gateway-wide settings that are not objects (stores, rules, providers)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from acteon._executor import ExecutorConfig
from acteon._retry import RetryStrategy


class ExecutorSettings(BaseModel):
    """``[executor]``: retries, per-attempt timeout, concurrency, DLQ."""

    model_config = ConfigDict(extra="forbid")

    max_retries: int = Field(3, ge=0)
    timeout_seconds: float = Field(30.0, gt=0)
    max_concurrent: int = Field(10, ge=1)
    dlq_enabled: bool = False
    retry: dict[str, Any] = Field(default_factory=dict)

    def build(self) -> ExecutorConfig:
        return ExecutorConfig(
            max_retries=self.max_retries,
            timeout_seconds=self.timeout_seconds,
            max_concurrent=self.max_concurrent,
            retry=RetryStrategy.from_config(self.retry),
            dlq_enabled=self.dlq_enabled,
        )


class GatewayConfig(BaseModel):
    """Settings of one gateway. Every field has a default.

    ``audit_ttl_seconds=None`` keeps audit records forever (DECISIONS D20).
    """

    model_config = ConfigDict(extra="forbid")

    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    environment: dict[str, str] = Field(default_factory=dict)
    default_timezone: str | None = None
    external_url: str = "http://localhost:8080"
    audit_store_payload: bool = True
    audit_ttl_seconds: int | None = Field(None, ge=1)
    event_buffer_size: int = Field(1024, ge=1)
    batch_concurrency: int = Field(32, ge=1)
    dispatch_lock_ttl_seconds: float = Field(30.0, gt=0)
    dispatch_lock_timeout_seconds: float = Field(5.0, ge=0)
    background_interval_seconds: float = Field(1.0, gt=0)

    @field_validator("default_timezone")
    @classmethod
    def _check_tz(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from acteon._tz import load_timezone

        load_timezone(value)  # raises with "invalid default_timezone" text below
        return value
