"""troposphere's ``BaseAWSObject.__init__`` and awacs' ``AWSObject.__init__`` with what they derive
from the class alone kept per class.

A build makes some 4,000 troposphere objects and 1,100 awacs ones. For each, troposphere 4.11.1's
``__init__`` (troposphere/__init__.py) builds the set of the class's property names from
``props``, a fresh list of the seven resource attribute names, looks up ``dictname`` and
``resource_type`` through ``hasattr``/``getattr`` (which, for a name the class lacks, goes through
its ``__getattr__`` and a raised ``KeyError``), walks every entry of ``props`` to find the
class-level defaults, and passes each keyword to ``__setattr__``, which tests it against the
object's ``__dict__``, the attribute list, the name set and the expected type's kind (an intrinsic
function, a validator, a list, a type) before it stores it. None of those tests but the last
depends on the value: they are the class's, so :func:`install` replaces ``__init__`` by
:func:`fast_init`, which derives them once per class (:func:`_class_info`) and then takes the same
steps in the same order:

- ``title``, ``template``, ``do_validation``, ``propnames`` (a copy of the class's name set: each
  object has its own, as before) and ``attributes`` (a fresh list) in the instance's ``__dict__``,
  where troposphere's ``__setattr__`` puts them before ``__initialized`` is set;
- ``validate_title()`` when the title is truthy (the class's own, as ``Parameter``'s);
- ``properties`` and ``resource`` (``{dictname: properties}`` or ``properties`` itself), ``Type``
  from ``resource_type``, then ``_BaseAWSObject__initialized``;
- each class-level default not given as a keyword through ``__setattr__`` (validated), in the
  order of ``props``; then each keyword: one ``__setattr__`` would store (an intrinsic function
  but ``Tags``, a value of the expected types, a validator's result, a list of the expected types
  or mapped through its validator) stored as it stores it, any other through ``__setattr__``
  itself (its error); then ``add_to_template()``.

awacs 2.6.1's ``AWSObject.__init__`` (awacs/__init__.py) likewise sets its first attributes through
``__setattr__`` and checks a list's items against a tuple it builds for each item:
:func:`fast_awacs_init` stores a keyword of the expected type (a list of them) directly and passes
any other to ``__setattr__``.

Measured: ``generate.py --quiet --diagrams none`` (every environment, one process), CPU (user+sys),
median of 21 interleaved fresh processes: ``fast_init`` 484 -> 454 ms with ``__setattr__`` for
every keyword, then 2,914M -> 2,816M instructions (callgrind; 438 -> 431 ms) with the keywords
stored here and render._plain_dict's own steps of ``to_dict``; ``fast_awacs_init`` 2,820M -> 2,796M
instructions (428 -> 423 ms). The output is byte-identical (tests/golden unchanged).

Only troposphere :data:`VERSION` and awacs :data:`AWACS_VERSION` are patched: another version (its
``__init__`` may differ) is left as it is. tests/test_troposphere_speed.py holds :func:`fast_init`
to :data:`ORIGINAL_INIT` for every AWSObject and AWSProperty class of the troposphere modules the
templates import, and :func:`fast_awacs_init` to :data:`ORIGINAL_AWACS_INIT` for awacs' classes:
the same ``__dict__`` and ``to_dict()`` (``JSONrepr()``) for the same keywords, and the same
exception type and message for an unknown property, a value or a list item of no expected type,
a value a validator refuses and a title that is not alphanumeric.
"""

from __future__ import annotations

import types
from typing import Any

import awacs
import troposphere
from troposphere import AWSHelperFn, BaseAWSObject, Tags

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

# How fast_init assigns a keyword of each property (else through troposphere's __setattr__)
_TYPE, _FUNCTION, _LIST, _LIST_FUNCTION = range(4)
# The names troposphere's __setattr__ finds in an object's __dict__ once __init__ has set them
# (assigned there as plain attributes, never as properties)
_STATE = frozenset(
    (
        "title",
        "template",
        "do_validation",
        "propnames",
        "attributes",
        "properties",
        "resource",
        "_BaseAWSObject__initialized",
    )
)

_ClassInfo = tuple[frozenset[str], tuple[tuple[str, Any], ...], "str | None", "str | None", dict[str, tuple[int, Any]]]
_classes: dict[type, _ClassInfo] = {}


def _assignment(expected: Any) -> tuple[int, Any] | None:
    """How ``__setattr__`` checks a value of a property of this expected type: ``(_TYPE, types)``
    (``isinstance``), ``(_FUNCTION, validator)``, ``(_LIST, types)`` (a list whose items are of
    them or intrinsic functions), ``(_LIST_FUNCTION, validator)`` (a list mapped through it); None
    for anything else."""
    if isinstance(expected, types.FunctionType):
        return _FUNCTION, expected
    if isinstance(expected, list):
        if len(expected) == 1 and isinstance(expected[0], types.FunctionType):
            return _LIST_FUNCTION, expected[0]
        # an item of the expected types or an intrinsic function
        return (_LIST, (*expected, AWSHelperFn)) if all(isinstance(kind, type) for kind in expected) else None
    if isinstance(expected, type) or (isinstance(expected, tuple) and all(isinstance(kind, type) for kind in expected)):
        return _TYPE, expected
    return None


def _class_info(cls: type) -> _ClassInfo:
    """What ``__init__`` derives from the class: its property names, its class-level defaults (name,
    value: those ``getattr(cls, name, None)`` finds not ``None``, in ``props`` order), its
    ``dictname``, its ``resource_type`` (``None`` where the class has none) and how each property is
    assigned (:func:`_assignment`; none where the class has its own ``__setattr__``, or for a name
    ``__setattr__`` takes as a resource attribute or a plain attribute first)."""
    props: dict[str, Any] = cls.props  # type: ignore[attr-defined]
    defaults = tuple((name, value) for name in props if (value := getattr(cls, name, None)) is not None)
    assigned = {}
    if getattr(cls, "__setattr__", None) is BaseAWSObject.__setattr__:
        for name, (expected, _required) in props.items():
            how = _assignment(expected)
            if how is not None and name not in _ATTRIBUTES and name not in _STATE:
                assigned[name] = how
    info = (frozenset(props), defaults, getattr(cls, "dictname", None), getattr(cls, "resource_type", None), assigned)
    _classes[cls] = info
    return info


_REFUSED: Any = object()


def _checked(how: tuple[int, Any], value: Any) -> Any:
    """What troposphere's ``__setattr__`` stores for ``value`` (not an intrinsic function) of a
    property assigned ``how`` (:func:`_assignment`), or ``_REFUSED`` where it raises an error."""
    kind, expected = how
    if kind == _TYPE:
        return value if isinstance(value, expected) else _REFUSED
    if kind == _LIST:
        return value if isinstance(value, list) and all(isinstance(item, expected) for item in value) else _REFUSED
    if kind == _LIST_FUNCTION and not isinstance(value, list):
        return _REFUSED
    try:
        return expected(value) if kind == _FUNCTION else list(map(expected, value))
    except Exception:  # troposphere's __setattr__ reports it (stderr) and raises it
        return _REFUSED


def fast_init(
    self: BaseAWSObject,
    title: str | None,
    template: troposphere.Template | None = None,
    validation: bool = True,
    **kwargs: Any,
) -> None:
    """troposphere's ``BaseAWSObject.__init__`` (same arguments, same steps, same errors), with the
    class-derived values of :func:`_class_info` computed once per class, and each keyword that
    troposphere's ``__setattr__`` would accept stored as it stores it: an intrinsic function (an
    ``AWSHelperFn`` but ``Tags``) as it is, else a value of the expected type(s), a validator's
    result, or a list (of the expected types or intrinsic functions, or mapped through the
    validator). A keyword it would refuse goes through ``__setattr__`` itself, which raises
    troposphere's error (a validator, a pure function, is then called a second time by it, which
    writes troposphere's line on stderr)."""
    cls = type(self)
    names, defaults, dictname, resource_type, assigned = _classes.get(cls) or _class_info(cls)
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
        how = assigned.get(name)
        if how is not None:
            if isinstance(value, AWSHelperFn) and not isinstance(value, Tags):
                properties[name] = value
                continue
            stored = _checked(how, value)
            if stored is not _REFUSED:
                properties[name] = stored
                continue
        set_attribute(name, value)
    self.add_to_template()


# --- awacs -----------------------------------------------------------------------------------

AWACS_VERSION = "2.6.1"
"""The awacs version whose ``AWSObject.__init__`` :func:`fast_awacs_init` reproduces (requirements.lock)."""

ORIGINAL_AWACS_INIT = awacs.AWSObject.__init__
"""awacs' own ``AWSObject.__init__``, as imported."""

# a class's props dict (by id; kept with it) -> how each keyword is assigned: (_TYPE, type) or (_LIST, types)
_awacs_props: dict[int, tuple[dict[str, Any], dict[str, tuple[int, Any]]]] = {}


def _awacs_assignments(props: dict[str, Any]) -> dict[str, tuple[int, Any]]:
    """How awacs' ``__setattr__`` checks a keyword of each property of ``props`` that it checks by
    type: ``(_TYPE, type)`` (``isinstance``) or ``(_LIST, types)`` (a list whose items are of them);
    a property checked by a validator function is not listed (its keyword goes to ``__setattr__``)."""
    kept = _awacs_props.get(id(props))
    if kept is not None and kept[0] is props:
        return kept[1]
    assigned: dict[str, tuple[int, Any]] = {}
    for name, (expected, _required) in props.items():
        if isinstance(expected, list) and all(isinstance(kind, type) for kind in expected):
            assigned[name] = (_LIST, tuple(expected))
        elif isinstance(expected, type):
            assigned[name] = (_TYPE, expected)
    _awacs_props[id(props)] = (props, assigned)
    return assigned


def fast_awacs_init(
    self: awacs.AWSObject,
    name: str | None,
    type: Any = None,  # awacs' own parameter name (which awacs does not use either)
    dictname: Any = None,
    props: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """awacs' ``AWSObject.__init__`` (same arguments, same steps, same errors), with each keyword
    of a property checked by type stored as awacs' ``__setattr__`` stores it when the value is of
    that type (a list: each item); any other keyword goes through ``__setattr__`` itself."""
    state = self.__dict__
    state["name"] = name
    props = props or {}
    state["props"] = props
    if name and not awacs.valid_names.match(name):
        raise ValueError("Name not alphanumeric")
    properties: dict[str, Any] = {}
    state["properties"] = properties
    state["resource"] = {dictname: properties} if dictname else properties
    state["_AWSObject__initialized"] = True
    cls = type_of(self)
    # A class's own props (Statement's, Policy's) are looked up once; props made for one object (an
    # AWSObject given props=) are not kept: each keyword goes through __setattr__
    shared = props is getattr(cls, "props", None) and getattr(cls, "__setattr__", None) is _AWACS_SETATTR
    assigned = _awacs_assignments(props) if shared else {}
    set_attribute = self.__setattr__
    for key, value in kwargs.items():
        how = assigned.get(key)
        if how is not None:
            kind, expected = how
            if kind == _TYPE:
                if isinstance(value, expected):
                    properties[key] = value
                    continue
            elif isinstance(value, list) and all(isinstance(item, expected) for item in value):
                properties[key] = value
                continue
        set_attribute(key, value)


type_of = type  # fast_awacs_init's parameter ``type`` (awacs' name) hides the builtin there
_AWACS_SETATTR = awacs.AWSObject.__setattr__


def install() -> tuple[bool, bool]:
    """Put :func:`fast_init` in place of troposphere's ``BaseAWSObject.__init__`` when troposphere is
    :data:`VERSION`, and :func:`fast_awacs_init` in place of awacs' ``AWSObject.__init__`` when awacs
    is :data:`AWACS_VERSION`; another version is left alone. Whether each is in place
    (troposphere, awacs). Installing twice changes nothing."""
    if getattr(troposphere, "__version__", None) == VERSION and BaseAWSObject.__init__ is ORIGINAL_INIT:
        BaseAWSObject.__init__ = fast_init
    if getattr(awacs, "__version__", None) == AWACS_VERSION and awacs.AWSObject.__init__ is ORIGINAL_AWACS_INIT:
        awacs.AWSObject.__init__ = fast_awacs_init  # type: ignore[method-assign]
    return BaseAWSObject.__init__ is fast_init, awacs.AWSObject.__init__ is fast_awacs_init
