"""Build a gateway from a TOML or YAML config file (sections as in server-api.md §5).

::

    [state]
    url = "sqlite:///acteon-state.db"      # or backend = "memory" / "redis" + url
    prefix = "acteon_"                     # and any other option of the backend's constructor
    [audit]
    enabled = true
    url = "sqlite:///acteon-audit.db"      # e.g. "redis://..." with write_behind = true
    store_payload = true
    ttl_seconds = 2592000                  # omit to keep records forever (D20)
    redact = { enabled = true, fields = ["password"] }      # docs/audit-compliance.md
    encryption = { keys = [{ id = "k1", key_hex = "..." }] }
    compliance = { mode = "hipaa" }                         # none / soc2 / hipaa
    [rules]
    directory = "rules"                    # or files = ["a.yaml", "b.cel"]
    watch = true                           # hot reload on file change (default false)
    default_timezone = "UTC"
    [executor]
    max_retries = 3
    timeout_seconds = 30
    max_concurrent = 10
    dlq_enabled = true
    [environment]
    region = "eu"
    [[providers]]
    name = "email"
    type = "webhook"
    url = "http://localhost:9999/hook"
    [gateway]                              # any other GatewayConfig field
    external_url = "https://acteon.example.com"

Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from acteon._exceptions import ConfigurationError
from acteon._settings import ExecutorSettings, GatewayConfig

_KNOWN_SECTIONS = {
    "state", "audit", "rules", "executor", "providers", "environment", "gateway", "server",
    "background", "chains", "circuit_breaker", "quotas", "ui", "auth", "rate_limit", "telemetry",
    "llm_guardrail", "embedding", "state_machines", "budgets", "scheduling",
}


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a ``.toml``, ``.yaml`` or ``.yml`` file into a dict."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {p}: {exc}") from exc
    try:
        if p.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"invalid config file {p}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"config file {p} must hold a table/mapping at the top level")
    return data


def _resolve_url(url: str, base: Path) -> str:
    """Make ``sqlite:///relative.db`` relative to the config file's folder."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url[len("sqlite:///"):]
        return "sqlite:////" + str((base / rel).resolve()).lstrip("/")
    return url


def _store_url(section: Mapping[str, Any], name: str, base: Path) -> str:
    url = section.get("url")
    backend = section.get("backend")
    if url is None:
        if backend in (None, "memory"):
            return "memory://"
        if backend == "sqlite":
            path = section.get("path", f"acteon-{name}.db")
            return _resolve_url(f"sqlite:///{path}", base)
        raise ConfigurationError(f"[{name}] backend '{backend}' needs a 'url'")
    if not isinstance(url, str):
        raise ConfigurationError(f"[{name}] url must be a string")
    if backend is not None and not url.startswith(str(backend)):
        raise ConfigurationError(f"[{name}] backend '{backend}' does not match url {url!r}")
    return _resolve_url(url, base)


# Keys of [state] / [audit] that the config layer itself reads, or that belong to
# upstream backends acteon does not have; every other key is a constructor option of
# the chosen store (prefix, pool_size, write_behind, batch_size, ...).
_STATE_META = frozenset({"backend", "url", "path", "region", "table_name"})
_AUDIT_META = frozenset({
    "backend", "url", "path", "enabled", "store_payload", "ttl_seconds", "cleanup_interval_seconds", "redact",
    "encryption", "compliance",
})


def _store_options(section: Mapping[str, Any], name: str, url: str, meta: frozenset[str]) -> dict[str, Any]:
    """Backend constructor options from a [state]/[audit] section (checked by the opener)."""
    options = {str(k): v for k, v in section.items() if k not in meta}
    if "clock" in options:
        raise ConfigurationError(f"[{name}] clock cannot be set in a config file; pass clock= to the gateway")
    prefix = options.get("prefix")
    if prefix is not None and not isinstance(prefix, str):
        raise ConfigurationError(f"[{name}] prefix must be a string, got {prefix!r}")
    if url.startswith("memory:"):
        # Upstream configs carry a prefix even for the memory backend, which has no keys to prefix.
        options.pop("prefix", None)
    return options


def _open_store(opener: Any, section: Mapping[str, Any], name: str, base: Path, meta: frozenset[str]) -> Any:
    url = _store_url(section, name, base)
    try:
        return opener(url, **_store_options(section, name, url, meta))
    except ConfigurationError as exc:
        raise ConfigurationError(f"[{name}] {exc.detail}") from exc


def gateway_kwargs_from_config(source: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Turn a config file or dict into ``AsyncGateway`` keyword arguments."""
    if isinstance(source, Mapping):
        data = dict(source)
        base = Path.cwd()
    else:
        data = read_config_file(source)
        base = Path(source).resolve().parent
    unknown = set(data) - _KNOWN_SECTIONS
    if unknown:
        raise ConfigurationError(f"unknown config section(s): {', '.join(sorted(unknown))}")

    from acteon.audit._open import open_audit_store
    from acteon.providers._registry import build_provider
    from acteon.rules import RuleSet, load_rules, load_rules_dir
    from acteon.state._open import open_state_store

    owned: list[Any] = []
    kwargs: dict[str, Any] = {}

    settings: dict[str, Any] = dict(data.get("gateway") or {})
    if "executor" in data:
        try:
            settings["executor"] = ExecutorSettings.model_validate(data["executor"])
        except ValidationError as exc:
            raise ConfigurationError(f"[executor]: {exc}") from exc
    if "environment" in data:
        settings["environment"] = {str(k): str(v) for k, v in dict(data["environment"]).items()}
    rules_cfg = dict(data.get("rules") or {})
    if rules_cfg.get("default_timezone") is not None:
        settings["default_timezone"] = rules_cfg["default_timezone"]
    audit_cfg = dict(data.get("audit") or {})
    if "store_payload" in audit_cfg:
        settings["audit_store_payload"] = bool(audit_cfg["store_payload"])
    if audit_cfg.get("ttl_seconds") is not None:
        settings["audit_ttl_seconds"] = int(audit_cfg["ttl_seconds"])
    server_cfg = dict(data.get("server") or {})
    if server_cfg.get("external_url"):
        settings.setdefault("external_url", server_cfg["external_url"])
    # Approval signing keys (workflows.md §5.1): [[server.approval_keys]] wins over approval_secret.
    if server_cfg.get("approval_keys") is not None:
        if not isinstance(server_cfg["approval_keys"], list):
            raise ConfigurationError("[server] approval_keys must be a list of {id, secret} tables")
        kwargs["approval_keys"] = list(server_cfg["approval_keys"])
    elif server_cfg.get("approval_secret") is not None:
        kwargs["approval_keys"] = [{"id": "k0", "secret": server_cfg["approval_secret"]}]
    try:
        kwargs["config"] = GatewayConfig.model_validate(settings)
    except ValidationError as exc:
        raise ConfigurationError(f"invalid gateway settings: {exc}") from exc
    except ValueError as exc:
        raise ConfigurationError(f"invalid default_timezone: {exc}") from exc

    state_cfg = dict(data.get("state") or {})
    state = _open_store(open_state_store, state_cfg, "state", base, _STATE_META)
    owned.append(state)
    kwargs["state"] = state
    if audit_cfg.get("enabled", bool(audit_cfg)):
        audit = _open_store(open_audit_store, audit_cfg, "audit", base, _AUDIT_META)
        owned.append(audit)
        from acteon.audit._config import wrap_from_config

        audit = wrap_from_config(audit, audit_cfg)  # redaction, encryption, hash chain, compliance
        kwargs["audit"] = audit

    ruleset = RuleSet()
    rules_paths: list[Path] = []
    if rules_cfg.get("directory"):
        rules_paths.append((base / str(rules_cfg["directory"])).resolve())
        ruleset = load_rules_dir(rules_paths[0])
    for file in rules_cfg.get("files") or []:
        rules_paths.append((base / str(file)).resolve())
        ruleset = RuleSet.merge(ruleset, load_rules(rules_paths[-1]))
    kwargs["rules"] = ruleset
    # Where the rules came from, for reload_rules() and hot reload: one path or, with
    # `files`, the list (directory first), reloaded in the same order.
    rules_source: Path | list[Path] | None = None
    if rules_paths:
        rules_source = rules_paths[0] if len(rules_paths) == 1 else rules_paths
    watch = rules_cfg.get("watch", False)
    if not isinstance(watch, bool):
        raise ConfigurationError(f"[rules] watch must be true or false, got {watch!r}")
    if watch:
        kwargs["watch_rules"] = True
    breaker_cfg = data.get("circuit_breaker")
    if breaker_cfg is not None:
        if not isinstance(breaker_cfg, Mapping):
            raise ConfigurationError("[circuit_breaker] must be a table")
        # As in the upstream server, a section without `enabled = true` builds no breakers.
        kwargs["circuit_breaker"] = {"enabled": False, **breaker_cfg}

    providers = []
    names: set[str] = set()
    costs: dict[str, Any] = {}
    for spec in data.get("providers") or []:
        if not isinstance(spec, Mapping):
            raise ConfigurationError("each [[providers]] entry must be a table")
        entry = dict(spec)
        if "cost" in entry:  # a routing setting (docs/cost-routing.md), not a provider option
            costs[str(entry.get("name"))] = entry.pop("cost")
        provider = build_provider(entry)
        if provider.name in names:
            raise ConfigurationError(f"provider '{provider.name}' is defined twice")
        names.add(provider.name)
        providers.append(provider)
        owned.append(provider)
    kwargs["providers"] = providers
    chains_cfg = data.get("chains")
    if chains_cfg is not None:
        # [chains]: engine settings and [[chains.definitions]]; validated by acteon.chains. The
        # server's 7-day retention of finished chains is the config file's default.
        if not isinstance(chains_cfg, Mapping):
            raise ConfigurationError("[chains] must be a table (definitions go in [[chains.definitions]])")
        kwargs["chains"] = {"completed_chain_ttl_seconds": 604800, **chains_cfg}
    machines = data.get("state_machines")
    if machines is not None:
        # [[state_machines]] tables, in the shape of workflows.md §7.1; validated by the feature.
        if not isinstance(machines, list):
            raise ConfigurationError("[[state_machines]] must be an array of tables (one per state machine)")
        kwargs["state_machines"] = [dict(m) if isinstance(m, Mapping) else m for m in machines]
    from acteon.quotas._config import quota_and_budget_kwargs

    kwargs.update(quota_and_budget_kwargs(data, costs))
    from acteon.scheduling._config import scheduling_kwargs

    kwargs.update(scheduling_kwargs(data))
    kwargs["_owned_resources"] = owned
    kwargs["_rules_source"] = rules_source
    return kwargs
