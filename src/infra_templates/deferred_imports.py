"""Imports that third-party libraries make at import time but a build never uses, left undone.

``generate.py`` calls :func:`install` before it imports troposphere or pydantic; it changes nothing
a run writes, only what a process imports: together some 14 ms of the CPU of importing
``generate`` (209.5 -> 195.6 ms, in process, median of 21 fresh processes each; cfn_flip's own
import is about 6 ms of it).

- troposphere's ``import cfn_flip`` (troposphere/__init__.py) serves only ``Template.to_yaml``,
  which the tool never calls (render.py writes the YAML). :func:`install` hands the import system
  cfn_flip's spec with the standard library's ``importlib.util.LazyLoader`` ("Implementing lazy
  imports", https://docs.python.org/3/library/importlib.html#implementing-lazy-imports): the
  module is executed, with its submodules (cfn_flip.yaml_dumper, cfn_clean, cfn_tools), the first
  time one of its attributes is read, so ``Template.to_yaml`` still returns cfn_flip's text.
  The docs' recipe puts the lazy module in ``sys.modules`` up front; on this Python, an ``import``
  statement that finds a lazy module there reads its ``__spec__`` and so loads it at once
  (python/cpython#127036), which troposphere's own ``import cfn_flip`` would do. A meta path
  finder (``sys.meta_path``, the import system's documented hook) instead gives troposphere's
  import, the first one, the lazy module, as ``LazyLoader.factory``'s use with a finder does.
- pydantic's plugin loader (``pydantic.plugin._loader``, imported when the first model is built)
  imports ``importlib.metadata`` (and with it the ``email`` package) for ``entry_points``, which
  it calls only when plugins are not turned off. With ``PYDANTIC_DISABLE_PLUGINS`` set to one of
  the values pydantic reads as "every plugin off" (``__all__``, ``1``, ``true``: "Disabling
  plugins", https://docs.pydantic.dev/latest/concepts/plugins/#disabling-plugins), its
  ``get_plugins()`` returns ``()`` before anything else; :func:`install` puts a module with that
  ``get_plugins`` in its place. With plugins on (any other value), pydantic's own loader is used.
  tests/test_deferred_imports.py holds both to the libraries' own answers.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Sequence
from importlib.machinery import ModuleSpec

DEFERRED = ("cfn_flip",)
"""Top-level modules executed only when first used."""
PLUGIN_LOADER = "pydantic.plugin._loader"
PLUGINS_OFF = ("__all__", "1", "true")  # pydantic's values of PYDANTIC_DISABLE_PLUGINS for every plugin off


class DeferringFinder:
    """A meta path finder: the spec of each top-level module in ``names`` with its loader wrapped in
    ``importlib.util.LazyLoader``, once per name (later imports find the module in ``sys.modules``);
    ``None`` for every other module, which the finders after it then find as usual. It stays in
    ``sys.meta_path`` (removing it while the import system walks that list would skip a finder)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = set(names)

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> ModuleSpec | None:
        if name not in self.names:
            return None
        self.names.discard(name)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def _no_plugins() -> tuple[()]:
    """pydantic's ``get_plugins()`` with every plugin turned off: none."""
    return ()


def install() -> None:
    """Defer :data:`DEFERRED` and, with pydantic's plugins off, its plugin loader's import (see the
    module's docstring). Does nothing for a module already imported."""
    pending = [name for name in DEFERRED if name not in sys.modules]
    if pending and not any(isinstance(finder, DeferringFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, DeferringFinder(pending))
    if os.environ.get("PYDANTIC_DISABLE_PLUGINS") in PLUGINS_OFF and PLUGIN_LOADER not in sys.modules:
        loader = types.ModuleType(PLUGIN_LOADER, "pydantic's plugin loader with every plugin off (deferred_imports)")
        loader.get_plugins = _no_plugins  # type: ignore[attr-defined]
        sys.modules[PLUGIN_LOADER] = loader
