"""Gateway.from_config: TOML/YAML files and dicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from acteon import Action, AsyncGateway, ConfigurationError, Gateway
from acteon.audit import MemoryAuditStore
from acteon.outcomes import Executed, Suppressed
from acteon.providers import LogProvider
from acteon.state import MemoryStateStore

RULES = "rules:\n  - {name: no-spam, condition: {field: action.action_type, eq: spam}, action: {type: suppress}}\n"


def write_config(tmp_path: Path, text: str, name: str = "acteon.toml") -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "base.yaml").write_text(RULES)
    path = tmp_path / name
    path.write_text(text)
    return path


def make(action_type: str = "send") -> Action:
    return Action(namespace="n", tenant="t", provider="log", action_type=action_type)


def test_toml_config_builds_everything(tmp_path: Path) -> None:
    path = write_config(tmp_path, """
[state]
url = "memory://"
[audit]
enabled = true
url = "memory://"
store_payload = false
[rules]
directory = "rules"
default_timezone = "Europe/Paris"
[executor]
max_retries = 1
timeout_seconds = 5
max_concurrent = 4
dlq_enabled = true
[environment]
region = "eu"
[[providers]]
name = "log"
type = "log"
""")
    with Gateway.from_config(path) as gw:
        assert isinstance(gw.state, MemoryStateStore)
        assert isinstance(gw.audit, MemoryAuditStore)
        assert gw.config.default_timezone == "Europe/Paris"
        assert gw.config.executor.max_retries == 1 and gw.dlq_enabled()
        assert gw.config.environment == {"region": "eu"}
        assert isinstance(gw.providers["log"], LogProvider)
        assert gw.dispatch(make("spam")) == Suppressed("no-spam")
        assert isinstance(gw.dispatch(make()), Executed)
        record = gw.audit_get(make().id)
        assert record is None
        assert gw.audit_query().records[0].action_payload is None
        # reload_rules() without arguments re-reads the configured folder
        (tmp_path / "rules" / "base.yaml").write_text("rules: []\n")
        assert gw.reload_rules() == 0
        assert isinstance(gw.dispatch(make("spam")), Executed)


def test_yaml_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, "rules: {directory: rules}\nproviders: [{name: log, type: log}]\n",
                        "acteon.yaml")
    with Gateway.from_config(path) as gw:
        assert gw.audit is None
        assert gw.dispatch(make("spam")) == Suppressed("no-spam")


@pytest.mark.parametrize("text,message", [
    ("[nope]\nx = 1\n", "unknown config section"),
    ("[executor]\nmax_retries = -1\n", "executor"),
    ("[executor]\nretries = 3\n", "executor"),
    ("[state]\nurl = \"postgres://x\"\n", "unknown state store scheme 'postgres'"),
    ("[[providers]]\nname = \"x\"\ntype = \"carrier-pigeon\"\n", "unknown provider type 'carrier-pigeon'"),
    ("[[providers]]\ntype = \"log\"\n", "needs a string 'name'"),
    ("[rules]\ndefault_timezone = \"Mars/Olympus\"\n", "invalid timezone: Mars/Olympus"),
    ("[state\n", "invalid config file"),
])
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigurationError, match=message):
        Gateway.from_config(path)


def test_dict_config_and_overrides() -> None:
    store = MemoryStateStore()
    gw = AsyncGateway.from_config({"providers": [{"name": "log", "type": "log"}]}, state=store)
    assert gw.state is store and "log" in gw.providers


def test_missing_config_file() -> None:
    with pytest.raises(ConfigurationError, match="cannot read config file"):
        Gateway.from_config("/nonexistent/acteon.toml")
