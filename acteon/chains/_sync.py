"""Blocking twins of the chain methods, mixed into ``acteon.Gateway``.

Each forwards to the ``AsyncGateway`` on the gateway's loop thread, so
behaviour and exceptions are those of the async methods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from acteon.chains._model import ChainConfig
from acteon.chains._views import ChainDetail, ChainSummary

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway


class ChainsSyncMixin:
    """Blocking ``register_chain``, ``chain_definitions``, ``list_chains``, ``get_chain``,
    ``cancel_chain``, ``pause_chain``, ``resume_chain`` and ``signal_chain``."""

    _async: AsyncGateway
    _call: Callable[..., Any]
    _call_sync: Callable[..., Any]

    def register_chain(self, definition: Mapping[str, Any] | ChainConfig) -> ChainConfig:
        result: ChainConfig = self._call_sync(self._async.register_chain, definition)
        return result

    def chain_definitions(self) -> list[ChainConfig]:
        result: list[ChainConfig] = self._call_sync(self._async.chain_definitions)
        return result

    def list_chains(self, namespace: str, tenant: str, status: str | None = None) -> list[ChainSummary]:
        result: list[ChainSummary] = self._call(self._async.list_chains, namespace, tenant, status)
        return result

    def get_chain(self, namespace: str, tenant: str, chain_id: str) -> ChainDetail | None:
        result: ChainDetail | None = self._call(self._async.get_chain, namespace, tenant, chain_id)
        return result

    def cancel_chain(
        self, namespace: str, tenant: str, chain_id: str, reason: str | None = None, cancelled_by: str | None = None
    ) -> ChainDetail:
        result: ChainDetail = self._call(self._async.cancel_chain, namespace, tenant, chain_id, reason, cancelled_by)
        return result

    def pause_chain(
        self, namespace: str, tenant: str, chain_id: str, reason: str | None = None, paused_by: str | None = None
    ) -> ChainDetail:
        result: ChainDetail = self._call(self._async.pause_chain, namespace, tenant, chain_id, reason, paused_by)
        return result

    def resume_chain(
        self, namespace: str, tenant: str, chain_id: str, resumed_by: str | None = None
    ) -> ChainDetail:
        result: ChainDetail = self._call(self._async.resume_chain, namespace, tenant, chain_id, resumed_by)
        return result

    def signal_chain(
        self, namespace: str, tenant: str, chain_id: str, signal_name: str, payload: Any = None
    ) -> None:
        self._call(self._async.signal_chain, namespace, tenant, chain_id, signal_name, payload)
