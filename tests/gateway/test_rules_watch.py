"""Hot reload of rule files (DECISIONS D10): a polling job driven by ``await gw.tick()``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from acteon import Action, AsyncGateway, Gateway
from acteon.outcomes import Executed, Suppressed
from acteon.rules._sources import fingerprint
from acteon.testing import FakeClock, RecordingProvider

pytestmark = pytest.mark.anyio


def make_action(action_type: str = "send_email") -> Action:
    return Action(namespace="ns", tenant="t", provider="email", action_type=action_type, payload={})


def suppress_rule(name: str, action_type: str, priority: int = 1, enabled: bool = True) -> str:
    return (
        f"  - {{name: {name}, priority: {priority}, enabled: {str(enabled).lower()}, "
        f"condition: {{field: action.action_type, eq: {action_type}}}, action: {{type: suppress}}}}\n"
    )


def write(path: Path, *rules: str) -> None:
    path.write_text("rules:\n" + "".join(rules), encoding="utf-8")


def gateway(rules: Any, **kwargs: Any) -> AsyncGateway:
    return AsyncGateway(
        rules=rules, providers=[RecordingProvider("email")], clock=FakeClock(), background=False,
        watch_rules=kwargs.pop("watch_rules", True), **kwargs,
    )


async def verdict_of(gw: AsyncGateway, action_type: str) -> str:
    outcome = await gw.dispatch(make_action(action_type))
    return outcome.rule if isinstance(outcome, Suppressed) else "executed"


async def test_changed_file_is_reloaded_on_tick(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", suppress_rule("block-spam", "spam"))
    async with gateway(tmp_path) as gw:
        events = gw.events(event_type="rules_reloaded")
        assert await verdict_of(gw, "spam") == "block-spam"
        assert (await gw.tick())["rules_watch"] == 0  # nothing changed

        write(tmp_path / "a.yaml", suppress_rule("block-ads", "ads"))
        assert await verdict_of(gw, "spam") == "block-spam"  # not before the tick
        assert (await gw.tick())["rules_watch"] == 1
        assert await verdict_of(gw, "spam") == "executed"
        assert await verdict_of(gw, "ads") == "block-ads"
        assert gw.rules_reload_error is None
        assert gw.metrics.rules_reloaded == 1
        event = events.get_nowait()
        assert event is not None and event.type == "rules_reloaded"
        assert event.data["rules"] == 1 and event.data["source"] == str(tmp_path)
        assert event.data["rules_version"] == gw.rules.rules_version()
        assert (await gw.tick())["rules_watch"] == 0
        assert events.get_nowait() is None


async def test_broken_file_keeps_previous_rules_until_fixed(tmp_path: Path) -> None:
    good = tmp_path / "rules.yaml"
    write(good, suppress_rule("block-spam", "spam"))
    async with gateway(tmp_path) as gw:
        failures = gw.events(event_type="rules_reload_failed")
        reloads = gw.events(event_type="rules_reloaded")
        before = gw.rules

        good.write_text("rules:\n  - name: broken\n    condition: {field: action.action_type, eq: x}\n"
                        "    action: {type: throttle, max_count: 3}\n", encoding="utf-8")
        assert (await gw.tick())["rules_watch"] == 1
        assert gw.rules is before
        assert await verdict_of(gw, "spam") == "block-spam"
        error = gw.rules_reload_error
        assert error is not None and "missing field `window_seconds`" in error and str(good) in error
        event = failures.get_nowait()
        assert event is not None
        assert event.data == {"source": str(tmp_path), "error": error, "rules": 1}
        assert gw.metrics.rules_reload_failed == 1
        # the same broken content is not retried (and not re-reported) on every tick
        assert (await gw.tick())["rules_watch"] == 0
        assert failures.get_nowait() is None

        # a second broken file next to it: still the old rules
        (tmp_path / "z.yaml").write_text("rules: [", encoding="utf-8")
        await gw.tick()
        assert gw.rules is before and "YAML parse error" in (gw.rules_reload_error or "")

        (tmp_path / "z.yaml").unlink()
        write(good, suppress_rule("block-ads", "ads"))
        assert (await gw.tick())["rules_watch"] == 1
        assert gw.rules_reload_error is None
        assert await verdict_of(gw, "ads") == "block-ads"
        assert await verdict_of(gw, "spam") == "executed"
        assert reloads.get_nowait() is not None


async def test_added_and_removed_files_are_noticed_and_other_files_ignored(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", suppress_rule("a", "a"))
    async with gateway(tmp_path) as gw:
        (tmp_path / "README.md").write_text("notes", encoding="utf-8")
        (tmp_path / "sub").mkdir()
        write(tmp_path / "sub" / "nested.yaml", suppress_rule("nested", "n"))
        assert (await gw.tick())["rules_watch"] == 0

        (tmp_path / "b.cel").write_text(
            "rules:\n  - {name: b, priority: 2, condition: 'action.action_type == \"b\"', action: {type: suppress}}\n",
            encoding="utf-8",
        )
        assert (await gw.tick())["rules_watch"] == 1
        assert gw.rules.names() == ["a", "b"]
        (tmp_path / "a.yaml").unlink()
        assert (await gw.tick())["rules_watch"] == 1
        assert gw.rules.names() == ["b"]


async def test_same_size_same_mtime_rewrite_is_detected_by_content(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    write(path, suppress_rule("rule-aaa", "spam"))
    stat = path.stat()
    async with gateway(path) as gw:
        write(path, suppress_rule("rule-bbb", "spam"))  # same length
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
        assert (await gw.tick())["rules_watch"] == 1
        assert await verdict_of(gw, "spam") == "rule-bbb"


def test_old_unchanged_files_are_not_rehashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.yaml"
    write(path, suppress_rule("r", "x"))
    old = 1_000_000_000 * 1_600_000_000
    os.utime(path, ns=(old, old))
    first = fingerprint(path)
    from acteon.rules import _sources

    def no_hashing(p: Path) -> str:
        raise AssertionError(f"{p} was hashed")

    monkeypatch.setattr(_sources, "_digest", no_hashing)
    assert fingerprint(path, first).same_as(first)


async def test_runtime_enable_disable_survives_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    write(path, suppress_rule("one", "one", 1), suppress_rule("two", "two", 2), suppress_rule("three", "three", 3, False))
    async with gateway(path) as gw:
        assert gw.disable_rule("one")
        # the file changes: "three" gets enabled there, "one" stays as the operator left it
        write(path, suppress_rule("one", "one", 1), suppress_rule("two", "two", 2), suppress_rule("three", "three", 3),
              suppress_rule("four", "four", 4))
        await gw.tick()
        assert [r.enabled for r in gw.rules.rules] == [False, True, True, True]
        assert await verdict_of(gw, "one") == "executed"
        assert await verdict_of(gw, "three") == "three"
        # "one" switched back to what its file said: no longer an override, so the next
        # edit of the file decides; "four" switched off: that switch wins over the edit
        gw.enable_rule("one")
        gw.disable_rule("four")
        write(path, suppress_rule("one", "one", 1, False), suppress_rule("two", "two", 2),
              suppress_rule("four", "four", 4))
        await gw.tick()
        assert [(r.name, r.enabled) for r in gw.rules.rules] == [("one", False), ("two", True), ("four", False)]
        # a switched rule that disappears from the files is simply gone
        write(path, suppress_rule("two", "two", 2))
        await gw.tick()
        assert [(r.name, r.enabled) for r in gw.rules.rules] == [("two", True)]


async def test_without_watch_rules_nothing_is_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    write(path, suppress_rule("old", "x"))
    async with gateway(path, watch_rules=False) as gw:
        write(path, suppress_rule("new", "x"))
        summary = await gw.tick()
        assert "rules_watch" not in summary
        assert gw.rules.names() == ["old"]
        assert gw.rules_reload_error is None


async def test_watch_without_a_rules_path_is_a_no_op() -> None:
    rules = "rules:\n" + suppress_rule("inline", "x")
    async with gateway(rules) as gw:
        assert (await gw.tick())["rules_watch"] == 0
        assert gw.rules.names() == ["inline"]


async def test_manual_reload_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    write(path, suppress_rule("v1", "x"))
    async with gateway(path) as gw:
        write(path, suppress_rule("v2", "x"))
        assert gw.reload_rules() == 1
        assert gw.rules.names() == ["v2"]
        # the watcher notices the same change and reloads to the same content
        await gw.tick()
        assert gw.rules.names() == ["v2"]


def write_config(tmp_path: Path, rules_section: str) -> Path:
    config = tmp_path / "acteon.toml"
    config.write_text(
        f"[rules]\n{rules_section}\n[[providers]]\nname = \"email\"\ntype = \"log\"\n", encoding="utf-8"
    )
    return config


async def test_config_rules_watch_with_directory(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    write(tmp_path / "rules" / "a.yaml", suppress_rule("a", "x"))
    config = write_config(tmp_path, 'directory = "rules"\nwatch = true')
    gw = AsyncGateway.from_config(config, background=False, clock=FakeClock())
    async with gw:
        write(tmp_path / "rules" / "a.yaml", suppress_rule("b", "x"))
        assert (await gw.tick())["rules_watch"] == 1
        assert gw.rules.names() == ["b"]


async def test_config_rules_watch_with_files(tmp_path: Path) -> None:
    write(tmp_path / "one.yaml", suppress_rule("one", "x", 1))
    write(tmp_path / "two.yaml", suppress_rule("two", "y", 2))
    config = write_config(tmp_path, 'files = ["one.yaml", "two.yaml"]\nwatch = true')
    gw = AsyncGateway.from_config(config, background=False, clock=FakeClock())
    async with gw:
        write(tmp_path / "two.yaml", suppress_rule("two-b", "y", 2))
        assert (await gw.tick())["rules_watch"] == 1
        assert gw.rules.names() == ["one", "two-b"]
        # reload_rules() without arguments reloads the same files
        write(tmp_path / "one.yaml", suppress_rule("one-b", "x", 1))
        assert gw.reload_rules() == 2
        assert gw.rules.names() == ["one-b", "two-b"]


def test_config_watch_must_be_a_boolean(tmp_path: Path) -> None:
    from acteon import ConfigurationError

    config = write_config(tmp_path, 'watch = "yes"')
    with pytest.raises(ConfigurationError, match=r"\[rules\] watch must be true or false"):
        AsyncGateway.from_config(config)


def test_blocking_gateway_watches_too(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    write(path, suppress_rule("old", "x"))
    with Gateway(rules=path, providers=[RecordingProvider("email")], clock=FakeClock(), background=False,
                 watch_rules=True) as gw:
        path.write_text("rules: [", encoding="utf-8")
        gw.tick()
        assert gw.rules.names() == ["old"]
        assert "YAML parse error" in (gw.rules_reload_error or "")
        write(path, suppress_rule("new", "x"))
        gw.tick()
        assert gw.rules_reload_error is None
        assert isinstance(gw.dispatch(make_action("y")), Executed)
        assert gw.dispatch(make_action("x")) == Suppressed("new")
