"""``acteon rules eval``: one trace, text or upstream JSON, with --at/--all/--env/--state/--timezone."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Cli, run_subprocess, write

PLAYGROUND = """\
rules:
  - {name: block-spam, priority: 1, description: Block spam actions,
     condition: {field: action.payload.category, eq: spam}, action: {type: suppress}}
  - {name: too-many, priority: 2, condition: {state_counter: hits, gt: 10}, action: {type: throttle,
     max_count: 10, window_seconds: 60}}
  - {name: eu-only, priority: 3, enabled: false, condition: {field: env.region, eq: eu}, action: {type: deny}}
  - {name: add-sender, priority: 5, condition: {field: action.action_type, eq: email},
     action: {type: modify, changes: {from: noreply@acme.com}}}
  - {name: office-hours, priority: 6, condition: {field: time.hour, gte: 9}, action: {type: deny}}
"""


def action(**payload: object) -> str:
    return json.dumps({"namespace": "n", "tenant": "t", "provider": "email", "action_type": "email",
                       "payload": payload})


def setup(cli: Cli, **payload: object) -> None:
    write(cli.cwd, "rules.yaml", PLAYGROUND)
    write(cli.cwd, "action.json", action(**payload))


def test_json_trace_is_the_upstream_shape(cli: Cli) -> None:
    setup(cli, category="spam")
    result = cli("rules", "eval", "--rules", "rules.yaml", "--action", "action.json", "--format", "json",
                 "--at", "2026-01-15T14:00:00Z", "--timezone", "US/Eastern")
    assert result.code == 0, result.err
    trace = result.json()
    assert (trace["verdict"], trace["matched_rule"]) == ("suppress", "block-spam")
    assert (trace["total_rules_evaluated"], trace["total_rules_skipped"]) == (1, 3)
    assert [e["result"] for e in trace["trace"]] == ["matched", "skipped", "skipped", "skipped"]
    assert trace["trace"][0]["description"] == "Block spam actions"
    assert trace["context"]["time"]["Map"]["hour"] == {"Int": 9}
    assert trace["context"]["effective_timezone"] == "US/Eastern"


def test_all_include_disabled_state_env_and_modify_preview(cli: Cli) -> None:
    setup(cli, to="a@b.c")
    result = cli("rules", "eval", "--rules", "rules.yaml", "--action", "action.json", "--format", "json",
                 "--all", "--include-disabled", "--state", "hits=11", "--env", "region=eu",
                 "--at", "2026-01-15T06:00:00Z")
    assert result.code == 0, result.err
    trace = result.json()
    assert (trace["verdict"], trace["matched_rule"]) == ("throttle", "too-many")
    entries = {e["rule_name"]: e for e in trace["trace"]}
    assert entries["too-many"]["result"] == "matched"
    assert (entries["eu-only"]["result"], entries["eu-only"]["skip_reason"]) == ("skipped", "disabled")
    assert entries["add-sender"]["modified_payload_preview"] == {"to": "a@b.c", "from": "noreply@acme.com"}
    assert entries["office-hours"]["result"] == "not_matched"  # 06:00 UTC
    assert trace["context"]["accessed_state_keys"] == ["counter:hits"]
    # the state override by full key works too
    result = cli("rules", "eval", "--rules", "rules.yaml", "--action", "action.json", "--format", "json",
                 "--state", "n:t:counter:hits=50")
    assert result.json()["matched_rule"] == "too-many"


def test_text_table(cli: Cli) -> None:
    setup(cli, to="a@b.c")
    result = cli("rules", "eval", "--rules", "rules.yaml", "--action", "action.json", "--all",
                 "--at", "2026-01-15T14:00:00Z")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "verdict: modify (rule 'add-sender')"
    assert lines[1].startswith("4 rules evaluated, 0 skipped, ")
    header = lines[3].split()
    assert header == ["#", "RESULT", "RULE", "PRIORITY", "ACTION", "CONDITION"]
    assert any("add-sender" in line and "matched" in line and "modify" in line for line in lines)
    assert '     -> patch: {"from": "noreply@acme.com"}' in lines
    assert "time: 2026-01-15 14:00:00 Thursday (UTC; unix 1768485600)" in lines
    assert lines[-1] == 'modified payload: {"from": "noreply@acme.com", "to": "a@b.c"}'


def test_error_verdict_exits_1_but_prints_the_trace(cli: Cli) -> None:
    write(cli.cwd, "rules.yaml", "rules:\n  - {name: bad, condition: {field: action.metadata.n, gt: 2}, "
                                 "action: {type: deny}}\n")
    write(cli.cwd, "action.json", action())
    result = cli("rules", "eval", "--rules", "rules.yaml", "--action", "action.json")
    assert result.code == 1
    assert result.out.startswith("verdict: error")
    assert "     -> error: type error: cannot compare null and int" in result.out


def test_bad_inputs(cli: Cli) -> None:
    write(cli.cwd, "rules.yaml", PLAYGROUND)
    write(cli.cwd, "bad.json", "{not json")
    base = ("rules", "eval", "--rules", "rules.yaml", "--action")
    result = cli(*base, "bad.json")
    assert result.code == 1
    assert result.err.startswith("acteon: error: action file bad.json is not valid JSON: ")
    write(cli.cwd, "list.json", "[1]")
    assert "must hold a JSON object" in cli(*base, "list.json").err
    write(cli.cwd, "partial.json", '{"namespace": "n"}')
    result = cli(*base, "partial.json")
    assert result.code == 1
    assert "invalid action in partial.json: tenant: Field required" in result.err
    assert cli(*base, "missing.json").code == 2
    write(cli.cwd, "action.json", action())
    assert cli(*base, "action.json", "--at", "yesterday").code == 2
    result = cli(*base, "action.json", "--timezone", "us/eastern")
    assert (result.code, result.err.startswith("acteon: error: invalid timezone: us/eastern")) == (2, True)
    assert cli(*base, "action.json", "--env", "novalue").code == 2
    assert cli(*base, "action.json", "--format", "xml").code == 2


def test_subprocess_eval_reads_stdin(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", PLAYGROUND)
    result = run_subprocess("rules", "eval", "--rules", "rules.yaml", "--action", "-", "--format", "json",
                            cwd=tmp_path, stdin=action(category="spam"))
    assert result.code == 0, result.err
    assert result.json()["matched_rule"] == "block-spam"
