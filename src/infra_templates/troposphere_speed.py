"""troposphere's ``BaseAWSObject.__init__`` with what it derives from the class alone kept per class.

A build makes some 4,000 troposphere objects. For each, troposphere 4.11.1's ``__init__``
(troposphere/__init__.py) builds the set of the class's property names from ``props``, a fresh list
of the seven resource attribute names, looks up ``dictname`` and ``resource_type`` through
``hasattr``/``getattr`` (which, for a name the class lacks, goes through its ``__getattr__`` and a
raised ``KeyError``), and walks every entry of ``props`` to find the class-level defaults, each time
through ``__setattr__`` for its first four attributes. None of that depends on the object: it is
the class's, so :func:`install` replaces ``__init__`` by :func:`fast_init`, which derives it once
per class (:func:`_class_info`) and then takes the same steps in the same order:

- ``title``, ``template``, ``do_validation``, ``propnames`` (a copy of the class's name set: each
  object has its own, as before) and ``attributes`` (a fresh list) in the instance's ``__dict__``,
  where troposphere's ``__setattr__`` puts them before ``__initialized`` is set;
- ``validate_title()`` when the title is truthy (the class's own, as ``Parameter``'s);
- ``properties`` and ``resource`` (``{dictname: properties}`` or ``properties`` itself), ``Type``
  from ``resource_type``, then ``_BaseAWSObject__initialized``;
- each class-level default not given as a keyword through ``__setattr__`` (validated), in the
  order of ``props``, then each keyword through ``__setattr__``, then ``add_to_template()``.

Measured: ``generate.py --quiet --diagrams none`` (every environment, one process), CPU (user+sys)
median of 21 interleaved fresh processes, 472 -> 452 ms (the prototype: ~20 ms); the output is
byte-identical (tests/golden unchanged).

Only troposphere :data:`VERSION` is patched: another version (its ``__init__`` may differ) is left
as it is. tests/test_troposphere_speed.py holds :func:`fast_init` to :data:`ORIGINAL_INIT` for every
AWSObject and AWSProperty class of the troposphere modules the templates import: the same
``__dict__`` and ``to_dict()`` for the same keywords, and the same exception type and message for
an unknown property, a value of the wrong type and a title that is not alphanumeric.
"""

from __future__ import annotations

from typing import Any

import troposphere
from troposphere import BaseAWSObject

VERSION = "4.11.1"
"""The troposphere version whose ``BaseAWSObject.__init__`` :func:`fast_init` reproduces (requirements.lock)."""

ORIGINAL_INIT = BaseAWSObject.__init__
"""troposphere's own ``BaseAWSObject.__init__``, as imported."""

_ATTRIBUTES = (
    "Condition",
    "CreationPolicy",
    "DeletionPolicy",
    "DependsOn",
    "Metadata",
    "UpdatePolicy",
    "UpdateReplacePolicy",
)  # troposphere's list of resource attributes, in its order

_ClassInfo = tuple[frozenset[str], tuple[tuple[str, Any], ...], "str | None", "str | None"]
_classes: dict[type, _ClassInfo] = {}


def _class_info(cls: type) -> _ClassInfo:
    """What ``__init__`` derives from the class: its property names, its class-level defaults (name,
    value: those ``getattr(cls, name, None)`` finds not ``None``, in ``props`` order), its
    ``dictname`` and its ``resource_type`` (``None`` where the class has none)."""
    props: dict[str, Any] = cls.props  # type: ignore[attr-defined]
    defaults = tuple((name, value) for name in props if (value := getattr(cls, name, None)) is not None)
    info = (frozenset(props), defaults, getattr(cls, "dictname", None), getattr(cls, "resource_type", None))
    _classes[cls] = info
    return info


def fast_init(
    self: BaseAWSObject,
    title: str | None,
    template: troposphere.Template | None = None,
    validation: bool = True,
    **kwargs: Any,
) -> None:
    """troposphere's ``BaseAWSObject.__init__`` (same arguments, same steps, same errors), with the
    class-derived values of :func:`_class_info` computed once per class."""
    cls = type(self)
    names, defaults, dictname, resource_type = _classes.get(cls) or _class_info(cls)
    state = self.__dict__
    state["title"] = title
    state["template"] = template
    state["do_validation"] = validation
    state["propnames"] = set(names)
    state["attributes"] = list(_ATTRIBUTES)
    if title:
        self.validate_title()
    properties: dict[str, Any] = {}
    state["properties"] = properties
    resource: dict[str, Any] = {dictname: properties} if dictname else properties
    state["resource"] = resource
    if resource_type is not None:
        resource["Type"] = resource_type
    state["_BaseAWSObject__initialized"] = True
    set_attribute = self.__setattr__
    for name, value in defaults:
        if name not in kwargs:
            set_attribute(name, value)
    for name, value in kwargs.items():
        set_attribute(name, value)
    self.add_to_template()


def install() -> bool:
    """Put :func:`fast_init` in place of ``BaseAWSObject.__init__`` when troposphere is :data:`VERSION`
    (True); leave troposphere alone otherwise (False). Installing twice changes nothing."""
    if getattr(troposphere, "__version__", None) != VERSION or BaseAWSObject.__init__ is not ORIGINAL_INIT:
        return BaseAWSObject.__init__ is fast_init
    BaseAWSObject.__init__ = fast_init
    return True
