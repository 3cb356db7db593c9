"""Validation of chain definitions: upstream's messages and order, plus acteon's checks.

:func:`validate` collects the structural messages of one definition in the
wording and order of workflows.md §3.2/§4.1 (they are joined into one error
text, so order matters), then acteon's template checks. :func:`check_sub_chain_graph`
looks at all definitions together: unknown sub-chains and cycles through
sub-chains.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from acteon.chains._model import ChainConfig, ChainConfigError, ChainStepConfig
from acteon.chains._templates import check_template


def validate(cfg: ChainConfig, *, check_duplicates: bool = True) -> list[str]:
    """Structural problems, in upstream's wording and order (workflows.md §3.2, §4.1),
    followed by acteon's template checks. Empty when the definition is valid."""
    msgs: list[str] = []
    steps = cfg.steps
    top_names = {s.name for s in steps}
    if check_duplicates:
        seen: set[str] = set()
        for s in steps:
            if s.name in seen:
                msgs.append(f"duplicate step name: `{s.name}`")
            seen.add(s.name)
    for s in steps:
        if s.sub_chain is not None and s.provider:
            msgs.append(f"step `{s.name}` has both `sub_chain` and `provider` set; they are mutually exclusive")
    for s in steps:
        if s.parallel is None:
            continue
        if s.provider:
            msgs.append(f"step `{s.name}` has both `parallel` and `provider` set; they are mutually exclusive")
        if s.sub_chain is not None:
            msgs.append(f"step `{s.name}` has both `parallel` and `sub_chain` set; they are mutually exclusive")
        if not s.parallel.steps:
            msgs.append(f"parallel step `{s.name}` must have at least one sub-step")
        sub_seen: set[str] = set()
        for sub in s.parallel.steps:
            if sub.parallel is not None:
                msgs.append(f"nested parallel not allowed: sub-step `{sub.name}` in parallel step `{s.name}`")
            if sub.sub_chain is not None:
                msgs.append(
                    f"sub-chains not allowed inside parallel groups: sub-step `{sub.name}` in parallel step `{s.name}`"
                )
            if sub.has_branching:
                msgs.append(
                    f"branches not allowed on parallel sub-steps: sub-step `{sub.name}` in parallel step `{s.name}`"
                )
            if sub.name in sub_seen:
                msgs.append(f"duplicate sub-step name `{sub.name}` in parallel step `{s.name}`")
            sub_seen.add(sub.name)
            if sub.name in top_names:
                msgs.append(f"parallel sub-step `{sub.name}` conflicts with top-level step name in chain")
            if sub.kind in ("timer", "wait_for_signal", "worker"):
                msgs.append(f"{sub.kind} steps are not allowed inside parallel groups: sub-step `{sub.name}` "
                            f"in parallel step `{s.name}`")
        if s.parallel.max_concurrency == 0:
            msgs.append(f"parallel step `{s.name}`: `max_concurrency` must be >= 1")
    for s in steps:
        kinds = _kinds(s)
        if len(kinds) > 1 and set(kinds) & {"timer", "wait_for_signal", "worker"}:
            msgs.append(f"step `{s.name}` sets multiple step kinds ({', '.join(kinds)}); they are mutually exclusive")
        if s.timer is not None:
            if (s.timer.duration_seconds is None) == (s.timer.until is None):
                msgs.append(f"timer step `{s.name}` must set exactly one of `duration_seconds` or `until`")
            elif s.timer.duration_seconds is not None and s.timer.duration_seconds < 1:
                msgs.append(f"timer step `{s.name}`: `duration_seconds` must be >= 1")
        if s.wait_for_signal is not None:
            w = s.wait_for_signal
            if not w.signal_name:
                msgs.append(f"wait_for_signal step `{s.name}` must set a non-empty `signal_name`")
            if w.on_timeout is not None and w.timeout_seconds is None:
                msgs.append(f"wait_for_signal step `{s.name}` sets `on_timeout` without `timeout_seconds`")
            if w.on_timeout is not None and w.on_timeout not in top_names:
                msgs.append(f"wait_for_signal step `{s.name}` has on_timeout targeting non-existent step "
                            f"`{w.on_timeout}`")
        if s.worker is not None:
            msgs.append(f"step `{s.name}`: worker-queue steps are not supported by acteon yet")
    for s in steps:
        if s.retry is None:
            continue
        if s.kind in ("timer", "wait_for_signal"):
            msgs.append(f"step `{s.name}` has a retry policy on a timer/wait_for_signal step; "
                        "retry is only supported on provider and worker steps")
        elif s.kind == "sub_chain":
            msgs.append(f"step `{s.name}` has a retry policy on a sub-chain step; "
                        "retry is only supported on provider steps")
        elif s.kind == "parallel":
            msgs.append(f"step `{s.name}` has a retry policy on a parallel step; "
                        "retry is only supported on provider steps")
    msgs.extend(branch_messages(cfg))
    msgs.extend(_template_messages(cfg))
    return msgs


def _kinds(s: ChainStepConfig) -> list[str]:
    kinds = []
    if s.provider:
        kinds.append("provider")
    for label, value in (("sub_chain", s.sub_chain), ("parallel", s.parallel), ("timer", s.timer),
                         ("wait_for_signal", s.wait_for_signal), ("worker", s.worker)):
        if value is not None:
            kinds.append(label)
    return kinds


def branch_messages(cfg: ChainConfig) -> list[str]:
    """The §3.2 branch-target, default_next and cycle checks (also run at chain start)."""
    msgs: list[str] = []
    names = {s.name for s in cfg.steps}
    for s in cfg.steps:
        for b in s.branches:
            if b.target not in names:
                msgs.append(f"step `{s.name}` branches to non-existent step `{b.target}`")
    for s in cfg.steps:
        if s.default_next is not None and s.default_next not in names:
            msgs.append(f"step `{s.name}` has default_next targeting non-existent step `{s.default_next}`")
    for s in cfg.steps:
        if s.has_branching and _reaches_itself(cfg, s):
            msgs.append(f"cycle detected: step `{s.name}` is reachable from itself via branches")
    return msgs


def _reaches_itself(cfg: ChainConfig, start: ChainStepConfig) -> bool:
    queue: deque[str] = deque(b.target for b in start.branches)
    if start.default_next is not None:
        queue.append(start.default_next)
    visited: set[str] = set()
    while queue:
        name = queue.popleft()
        if name == start.name:
            return True
        if name in visited:
            continue
        visited.add(name)
        idx = cfg.step_index(name)
        if idx is None:
            continue
        node = cfg.steps[idx]
        queue.extend(b.target for b in node.branches)
        if node.default_next is not None:
            queue.append(node.default_next)
        if not node.has_branching and idx + 1 < len(cfg.steps):
            queue.append(cfg.steps[idx + 1].name)
    return False


def _template_messages(cfg: ChainConfig) -> list[str]:
    names = frozenset(
        [s.name for s in cfg.steps]
        + [sub.name for s in cfg.steps if s.parallel is not None for sub in s.parallel.steps]
    )
    msgs = []
    for s in cfg.steps:
        for problem in check_template(s.payload_template, names):
            msgs.append(f"step `{s.name}` payload_template {problem}")
        if s.parallel is not None:
            for sub in s.parallel.steps:
                for problem in check_template(sub.payload_template, names):
                    msgs.append(f"sub-step `{sub.name}` of `{s.name}` payload_template {problem}")
    return msgs


def check_definition(cfg: ChainConfig) -> None:
    """Raise :class:`ChainConfigError` with every problem of one definition joined by ``; ``.

    Duplicate step names are reported only for chains with branches: a linear
    chain with repeated names is accepted, as upstream (workflows.md §14 #17).
    """
    msgs = validate(cfg, check_duplicates=cfg.has_branches)
    if msgs:
        raise ChainConfigError(f"invalid chain configuration '{cfg.name}': {'; '.join(msgs)}")


def check_sub_chain_graph(defs: Mapping[str, ChainConfig]) -> None:
    """Every referenced sub-chain exists and no chain reaches itself through sub-chains."""
    msgs: list[str] = []
    for name in sorted(defs):
        for s in defs[name].steps:
            if s.sub_chain is not None and s.sub_chain not in defs:
                msgs.append(f"chain `{name}` references unknown sub-chain `{s.sub_chain}`")
    white, gray, black = 0, 1, 2
    color = dict.fromkeys(defs, white)
    path: list[str] = []

    def visit(node: str) -> str | None:
        color[node] = gray
        path.append(node)
        for s in defs[node].steps:
            child = s.sub_chain
            if child is None or child not in defs:
                continue
            if color[child] == gray:
                cycle = [*path[path.index(child):], child]
                return " -> ".join(cycle)
            if color[child] == white:
                found = visit(child)
                if found is not None:
                    return found
        path.pop()
        color[node] = black
        return None

    for name in sorted(defs):
        if color[name] == white:
            found = visit(name)
            if found is not None:
                msgs.append(f"sub-chain cycle detected: {found}")
                break
    if msgs:
        raise ChainConfigError("; ".join(msgs))
