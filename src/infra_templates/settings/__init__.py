"""The settings models, one module per concern; import them from :mod:`infra_templates.config`.

These modules (and addons.py's models) do without ``from __future__ import annotations``: pydantic
reads a model's field types from its annotations, and a string annotation it must compile and
evaluate, one by one (206 fields: 3 ms of every run's CPU); a real one it takes as it is. A
validator's return annotation naming its own class, not defined yet when the method is, is the one
quoted.
"""
