"""``[state]`` / ``[audit]`` backend options in config files reach the stores."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from acteon import Action, ConfigurationError, Gateway
from acteon.audit import open_audit_store
from acteon.audit.sqlite import SQLiteAuditStore
from acteon.state import open_state_store
from acteon.state.sqlite import SQLiteStateStore
from tests.conftest import require_redis
from tests.contract.conftest import _delete_prefix

DEDUP = "rules:\n  - {name: once, condition: {field: action.action_type, eq: send}, " \
        "action: {type: deduplicate, ttl_seconds: 60}}\n"


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "rules.yaml").write_text(DEDUP)
    path = tmp_path / "acteon.toml"
    path.write_text(text + '\n[rules]\nfiles = ["rules.yaml"]\n[[providers]]\nname = "log"\ntype = "log"\n')
    return path


def action() -> Action:
    return Action(namespace="n", tenant="t", provider="log", action_type="send", dedup_key="k")


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_sqlite_prefix_and_options_reach_the_stores(tmp_path: Path) -> None:
    path = write(tmp_path, """
[state]
url = "sqlite:///state.db"
prefix = "app_"
busy_timeout = 2.5
[audit]
url = "sqlite:///audit.db"
prefix = "trail_"
batch_size = 1
""")
    with Gateway.from_config(path) as gw:
        assert isinstance(gw.state, SQLiteStateStore) and gw.state.prefix == "app_"
        assert isinstance(gw.audit, SQLiteAuditStore)
        assert gw.audit.prefix == "trail_" and gw.audit.batch_size == 1
        assert gw.dispatch(action()).kind == "executed"
        assert gw.dispatch(action()).kind == "deduplicated"
    assert {"app_state", "app_locks"} <= tables(tmp_path / "state.db")
    assert "acteon_state" not in tables(tmp_path / "state.db")
    assert "trail_audit" in tables(tmp_path / "audit.db")


def test_memory_backend_ignores_an_upstream_prefix(tmp_path: Path) -> None:
    # Upstream's default [audit] carries prefix = "acteon_" with the memory backend.
    path = write(tmp_path, '[state]\nbackend = "memory"\nprefix = "acteon"\n'
                           '[audit]\nenabled = true\nbackend = "memory"\nprefix = "acteon_"\n')
    with Gateway.from_config(path) as gw:
        assert gw.dispatch(action()).kind == "executed"


@pytest.mark.parametrize("text,message", [
    ('[state]\nurl = "sqlite:///s.db"\nprefx = "a_"\n',
     r"\[state\] the SQLite state store \(SQLiteStateStore\) does not take the option\(s\) prefx"),
    ('[audit]\nurl = "sqlite:///a.db"\nwrite_behind = true\n', r"\[audit\] .*write_behind; it takes: .*batch_size"),
    ('[state]\nurl = "sqlite:///s.db"\nprefix = 5\n', r"\[state\] prefix must be a string"),
    ('[state]\nurl = "sqlite:///s.db"\nprefix = "no-dash"\n', r"\[state\] table prefix 'no-dash'"),
    ('[state]\nurl = "memory://"\nshards = 4\n', r"\[state\] the memory state store .* shards"),
    ('[audit]\nurl = "sqlite:///a.db"\nbatch_size = 0\n', r"\[audit\] .*batch_size must be at least 1"),
    ('[state]\nurl = "sqlite:///s.db"\nclock = "fake"\n', r"\[state\] clock cannot be set"),
])
def test_bad_backend_option_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Gateway.from_config(write(tmp_path, text))


def test_openers_check_options() -> None:
    with pytest.raises(ConfigurationError, match=r"MemoryStateStore\) does not take the option\(s\) prefix"):
        open_state_store("memory://", prefix="x")
    with pytest.raises(ConfigurationError, match="MemoryAuditStore"):
        open_audit_store("memory://", write_behind=True)


@pytest.mark.redis
def test_redis_prefix_and_write_behind_reach_the_stores(tmp_path: Path) -> None:
    import redis

    url = require_redis()
    prefix = f"acteon-test-{uuid.uuid4().hex[:12]}"
    path = write(tmp_path, f"""
[state]
url = "{url}"
prefix = "{prefix}"
pool_size = 2
[audit]
url = "{url}"
prefix = "{prefix}"
write_behind = true
""")
    try:
        with Gateway.from_config(path) as gw:
            assert gw.state.prefix == prefix  # type: ignore[attr-defined]
            assert gw.audit is not None and gw.audit.write_behind  # type: ignore[attr-defined]
            assert gw.dispatch(action()).kind == "executed"
            assert gw.dispatch(action()).kind == "deduplicated"
        client = redis.Redis.from_url(url, decode_responses=True)
        try:
            assert client.exists(f"{prefix}:n:t:dedup:k:h")
            assert client.hlen(f"{prefix}:audit:records") == 2  # write-behind records flushed on close
        finally:
            client.close()
    finally:
        import anyio

        anyio.run(_delete_prefix, url, prefix)
