"""Workflow features of the gateway: human approvals, grouping, state machines, chains.

Each feature module exposes ``attach(gateway, options)`` and is listed in
``acteon._features.FEATURE_MODULES``.
"""
