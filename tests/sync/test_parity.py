"""The blocking Gateway mirrors AsyncGateway: same public methods, same signatures."""

from __future__ import annotations

import inspect

from acteon import AsyncGateway, Gateway

# Lifecycle differs by nature: `async with`/aclose() versus `with`/close().
ASYNC_ONLY = {"aclose"}
SYNC_ONLY = {"close", "async_gateway"}


def public(cls: type) -> dict[str, object]:
    return {n: getattr(cls, n) for n in dir(cls) if not n.startswith("_")}


def test_same_public_names() -> None:
    a = set(public(AsyncGateway)) - ASYNC_ONLY
    s = set(public(Gateway)) - SYNC_ONLY
    assert a == s, f"only async: {sorted(a - s)}; only sync: {sorted(s - a)}"


def test_same_signatures() -> None:
    for name, member in public(AsyncGateway).items():
        if name in ASYNC_ONLY:
            continue
        twin = getattr(Gateway, name)
        if isinstance(member, property):
            assert isinstance(twin, property), name
            continue
        a_sig = inspect.signature(member)  # type: ignore[arg-type]
        s_sig = inspect.signature(twin)
        assert list(a_sig.parameters) == list(s_sig.parameters), name
        for p in a_sig.parameters:
            assert a_sig.parameters[p].kind == s_sig.parameters[p].kind, (name, p)
            assert a_sig.parameters[p].default == s_sig.parameters[p].default, (name, p)


def test_same_constructor() -> None:
    a = inspect.signature(AsyncGateway.__init__)
    s = inspect.signature(Gateway.__init__)
    assert a.parameters.keys() == s.parameters.keys()
    for p in a.parameters:
        assert a.parameters[p].default == s.parameters[p].default, p
