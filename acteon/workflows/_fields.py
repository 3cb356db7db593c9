"""Reading action fields for group keys and fingerprints (workflows.md §1.1, §6.1, §7.2).

Both features turn a list of field paths into text and hash it, and both must
produce the same hex digests as the Rust gateway so keys stored by either one
line up. The two differ only in what a missing field contributes: a group key
skips it, a fingerprint writes it as an empty string.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from acteon._action import Action

_ACTION_FIELDS = ("namespace", "tenant", "provider", "action_type")


def format_number(value: int | float) -> str:
    """A number as the reference prints it: ``1.0`` keeps its fraction, ``1e21``, ``1.5e-7``.

    Plain decimal for 1e-5 <= |x| < 1e16, otherwise exponent form without a ``+``
    sign or zero padding. Python's ``repr`` differs on both ends (``1e-05``,
    ``1e+16``), hence this formatter.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    shortest = repr(value)
    magnitude = abs(value)
    if 1e-5 <= magnitude < 1e16:
        text = format(Decimal(shortest), "f")
        return text if "." in text else text + ".0"
    digits, _, exponent = format(Decimal(shortest), "e").partition("e")
    return f"{digits}e{int(exponent)}"


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys and reference number formatting."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        items = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{canonical_json(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _stringify(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return format_number(value)
    return canonical_json(value)


def _payload_value(payload: Any, path: str) -> Any:
    current = payload
    for segment in path.split(".") if path else ():
        if isinstance(current, dict):
            if segment not in current:
                return None
            current = current[segment]
        elif isinstance(current, list) and segment.isdigit():
            index = int(segment)
            if index >= len(current):
                return None
            current = current[index]
        else:
            return None
    return current


def field_value(action: Action, path: str) -> str | None:
    """The text of one field for a group key; ``None`` when the field is absent (§6.1)."""
    if path in _ACTION_FIELDS:
        value: str = getattr(action, path)
        return value
    if path == "status":
        return action.status
    if path.startswith("metadata."):
        return action.metadata.get(path[len("metadata."):])
    if path == "payload" or path.startswith("payload."):
        return _stringify(_payload_value(action.payload, path[len("payload."):]))
    return None


def fingerprint_value(action: Action, path: str) -> str:
    """The text of one field for a fingerprint: like :func:`field_value`, but ``id``
    counts and a missing value is the empty string (§7.2)."""
    if path == "id":
        return action.id
    value = field_value(action, path)
    return "" if value is None else value


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def compute_fingerprint(action: Action, fields: Sequence[str]) -> str:
    """``sha256("f1=v1;f2=v2;")`` over the fields in order; missing values are empty."""
    return sha256_hex("".join(f"{f}={fingerprint_value(action, f)};" for f in fields))


def action_fingerprint(action: Action, fields: Sequence[str]) -> str:
    """The action's own ``fingerprint`` when it has one, else :func:`compute_fingerprint`."""
    return action.fingerprint if action.fingerprint is not None else compute_fingerprint(action, fields)


def group_key(action: Action, group_by: Sequence[str]) -> tuple[str, dict[str, str]]:
    """``(group_key, labels)``: the hash over the scope and the present fields, and
    those fields by their literal path (§6.1). Absent fields are skipped, so they
    neither split nor change the key."""
    labels: dict[str, str] = {}
    parts: list[str] = []
    for path in group_by:
        value = field_value(action, path)
        if value is None:
            continue
        labels[path] = value
        parts.append(f"{path}={value};")
    return sha256_hex(f"{action.namespace}:{action.tenant}:" + "".join(parts)), labels
