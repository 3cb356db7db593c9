"""State-machine definitions: parsing and validation at load time (workflows.md §7.1).

A definition is a dict (constructor argument ``state_machines=[...]`` or a
``[[state_machines]]`` config table)::

    {"name": "ticket", "initial_state": "open",
     "states": ["open", "in_progress", "closed"],
     "transitions": [{"from": "open", "to": "in_progress", "on_transition": {"notify": True}}],
     "timeouts": [{"in_state": "open", "after_seconds": 3600, "transition_to": "closed"}],
     "notify_provider": "slack",          # acteon: where notifications go
     "label_field": "metadata.cluster"}   # acteon: also track active events per label

Unlike upstream, which never checks ``states``, every state named by
``initial_state``, a transition or a timeout must be listed in ``states``;
names must be unique. Errors name the definition and the offending entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from acteon._exceptions import ConfigurationError

_TOP_KEYS = frozenset({
    "name", "initial_state", "states", "transitions", "timeouts", "notify_provider", "label_field",
    "description",
})
_TRANSITION_KEYS = frozenset({"from", "to", "on_transition", "notify"})
_ON_TRANSITION_KEYS = frozenset({"notify", "webhook_url", "metadata"})
_TIMEOUT_KEYS = frozenset({"in_state", "state", "after_seconds", "transition_to"})


@dataclass(frozen=True, slots=True)
class Transition:
    from_state: str
    to_state: str
    notify: bool = False
    webhook_url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StateTimeout:
    in_state: str
    after_seconds: int
    transition_to: str


@dataclass(frozen=True, slots=True)
class StateMachineDef:
    """One validated state machine. The first matching transition/timeout (list order) applies."""

    name: str
    initial_state: str
    states: tuple[str, ...]
    transitions: tuple[Transition, ...] = ()
    timeouts: tuple[StateTimeout, ...] = ()
    notify_provider: str | None = None
    label_field: str | None = None

    def transition(self, from_state: str, to_state: str) -> Transition | None:
        for t in self.transitions:
            if t.from_state == from_state and t.to_state == to_state:
                return t
        return None

    def timeout_for(self, state: str) -> StateTimeout | None:
        for t in self.timeouts:
            if t.in_state == state:
                return t
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "initial_state": self.initial_state,
            "states": list(self.states),
            "transitions": [
                {"from": t.from_state, "to": t.to_state,
                 "on_transition": {"notify": t.notify, "webhook_url": t.webhook_url, "metadata": dict(t.metadata)}}
                for t in self.transitions
            ],
            "timeouts": [
                {"in_state": t.in_state, "after_seconds": t.after_seconds, "transition_to": t.transition_to}
                for t in self.timeouts
            ],
        }
        if self.notify_provider is not None:
            out["notify_provider"] = self.notify_provider
        if self.label_field is not None:
            out["label_field"] = self.label_field
        return out


def _where(index: int, name: str | None) -> str:
    return f"state_machines[{index}]" + (f" ('{name}')" if name else "")


def _string(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{where}: '{key}' must be a non-empty string, got {value!r}")
    return value


def _unknown_keys(data: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )


def _known_state(state: str, states: Sequence[str], where: str, role: str) -> None:
    if state not in states:
        raise ConfigurationError(f"{where}: {role} '{state}' is not one of the states ({', '.join(states)})")


def _parse_transition(raw: Any, where: str, states: Sequence[str]) -> Transition:
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{where}: a transition must be a table/dict, got {type(raw).__name__}")
    _unknown_keys(raw, _TRANSITION_KEYS, where)
    src = _string(raw.get("from"), where, "from")
    dst = _string(raw.get("to"), where, "to")
    _known_state(src, states, where, "'from' state")
    _known_state(dst, states, where, "'to' state")
    on = raw.get("on_transition") or {}
    if not isinstance(on, Mapping):
        raise ConfigurationError(f"{where}.on_transition: must be a table/dict, got {type(on).__name__}")
    _unknown_keys(on, _ON_TRANSITION_KEYS, f"{where}.on_transition")
    notify = on.get("notify", raw.get("notify", False))
    if not isinstance(notify, bool):
        raise ConfigurationError(f"{where}: 'notify' must be true or false, got {notify!r}")
    url = on.get("webhook_url")
    if url is not None and not isinstance(url, str):
        raise ConfigurationError(f"{where}.on_transition: 'webhook_url' must be a string, got {url!r}")
    meta = on.get("metadata") or {}
    if not isinstance(meta, Mapping):
        raise ConfigurationError(f"{where}.on_transition: 'metadata' must be a table/dict, got {meta!r}")
    return Transition(src, dst, notify, url, dict(meta))


def _parse_timeout(raw: Any, where: str, states: Sequence[str]) -> StateTimeout:
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{where}: a timeout must be a table/dict, got {type(raw).__name__}")
    _unknown_keys(raw, _TIMEOUT_KEYS, where)
    # The upstream docs write ``state = ...``; the struct field is ``in_state``. Accept both.
    in_state = _string(raw.get("in_state", raw.get("state")), where, "in_state")
    target = _string(raw.get("transition_to"), where, "transition_to")
    after = raw.get("after_seconds")
    if isinstance(after, bool) or not isinstance(after, int) or after <= 0:
        raise ConfigurationError(f"{where}: 'after_seconds' must be a positive integer, got {after!r}")
    _known_state(in_state, states, where, "'in_state'")
    _known_state(target, states, where, "'transition_to' state")
    return StateTimeout(in_state, after, target)


def parse_state_machine(raw: Any, index: int = 0) -> StateMachineDef:
    """One definition from its dict form; raises ``ConfigurationError`` naming the problem."""
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            f"{_where(index, None)}: a state machine must be a table/dict, got {type(raw).__name__}"
        )
    name = raw.get("name")
    where = _where(index, name if isinstance(name, str) else None)
    _unknown_keys(raw, _TOP_KEYS, where)
    name = _string(name, where, "name")
    initial = _string(raw.get("initial_state"), where, "initial_state")
    states_raw = raw.get("states")
    if not isinstance(states_raw, list | tuple) or not states_raw:
        raise ConfigurationError(f"{where}: 'states' must be a non-empty list of state names")
    states: list[str] = []
    for i, s in enumerate(states_raw):
        state = _string(s, where, f"states[{i}]")
        if state in states:
            raise ConfigurationError(f"{where}: state '{state}' is listed twice")
        states.append(state)
    _known_state(initial, states, where, "initial_state")
    transitions_raw = raw.get("transitions")
    if transitions_raw is None:
        transitions_raw = []
    if not isinstance(transitions_raw, list | tuple):
        raise ConfigurationError(f"{where}: 'transitions' must be a list")
    transitions = tuple(
        _parse_transition(t, f"{where}.transitions[{i}]", states) for i, t in enumerate(transitions_raw)
    )
    timeouts_raw = raw.get("timeouts") or []
    if not isinstance(timeouts_raw, list | tuple):
        raise ConfigurationError(f"{where}: 'timeouts' must be a list")
    timeouts = tuple(_parse_timeout(t, f"{where}.timeouts[{i}]", states) for i, t in enumerate(timeouts_raw))
    provider = raw.get("notify_provider")
    if provider is not None:
        provider = _string(provider, where, "notify_provider")
    label = raw.get("label_field")
    if label is not None:
        # Rule conditions spell paths ``action.metadata.x``; fingerprint fields ``metadata.x``. Take both.
        label = _string(label, where, "label_field").removeprefix("action.")
    return StateMachineDef(name, initial, tuple(states), transitions, timeouts, provider, label)


def parse_state_machines(raw: Sequence[Any] | None) -> dict[str, StateMachineDef]:
    """Definitions by name; a repeated name is an error."""
    if raw is None:
        return {}
    if isinstance(raw, Mapping) or isinstance(raw, str) or not isinstance(raw, Sequence):
        raise ConfigurationError("state_machines must be a list of state machine definitions")
    out: dict[str, StateMachineDef] = {}
    for index, item in enumerate(raw):
        if isinstance(item, StateMachineDef):
            machine = item
        else:
            machine = parse_state_machine(item, index)
        if machine.name in out:
            raise ConfigurationError(f"{_where(index, machine.name)}: a state machine named '{machine.name}' "
                                     "is already defined")
        out[machine.name] = machine
    return out
