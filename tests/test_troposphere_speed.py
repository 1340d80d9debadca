"""infra_templates.troposphere_speed's ``fast_init`` is troposphere's own ``BaseAWSObject.__init__``:
for every AWSObject, AWSProperty and declaration class of the troposphere modules a build imports,
an object built by each from the same arguments has the same state (``__dict__``) and the same
``to_dict()``, and a bad argument raises the same exception with the same message.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import troposphere
from troposphere import AWSHelperFn, AWSObject, BaseAWSObject, Ref, Template
from troposphere.sqs import Queue

from infra_templates import troposphere_speed
from infra_templates.troposphere_speed import ORIGINAL_INIT, fast_init


def _template_modules() -> list[str]:
    """The troposphere modules the layer modules (templates/) and the toolkit's build import."""
    import templates  # noqa: PLC0415 - imported here to read what it imports

    for module in pkgutil.walk_packages(templates.__path__, "templates."):
        importlib.import_module(module.name)
    importlib.import_module("infra_templates.pipeline")
    imported = sorted(name for name in sys.modules if name.startswith("troposphere."))
    return [name for name in imported if _classes(name)]  # (troposphere.compat, constants, validators: none)


def _classes(module: str) -> list[type[BaseAWSObject]]:
    found = vars(sys.modules[module]).values()
    return sorted(
        (c for c in found if isinstance(c, type) and issubclass(c, BaseAWSObject) and c.__module__ == module),
        key=lambda c: c.__name__,
    )


MODULES = _template_modules()
HELPER = Ref("Elsewhere")  # an intrinsic function: taken by every property without validation


class _Wrong:
    """A value of no type troposphere expects."""

    def __repr__(self) -> str:
        return "<wrong>"


WRONG = _Wrong()


def _state(obj: BaseAWSObject) -> dict[str, Any]:
    state = dict(obj.__dict__)
    template = state.pop("template")
    state["template"] = None if template is None else sorted(template.resources)
    return state


def _outcomes(init: Callable[..., None], builds: list[Callable[[], BaseAWSObject]]) -> list[tuple[Any, ...]]:
    """What each build gives with ``init`` as BaseAWSObject.__init__ (set once for all: setting it
    invalidates the type caches of its 1,900 subclasses): the object's state and its ``to_dict()``
    (or what that raised), or the exception's type and message."""
    installed = BaseAWSObject.__init__
    BaseAWSObject.__init__ = init
    try:
        return [_outcome(build) for build in builds]
    finally:
        BaseAWSObject.__init__ = installed


def _outcome(build: Callable[[], BaseAWSObject]) -> tuple[Any, ...]:
    try:
        obj = build()
    except Exception as error:  # the outcome compared is the exception itself
        return ("raised", type(error), str(error))
    try:
        as_dict: Any = obj.to_dict()
    except Exception as error:  # the outcome compared is the exception itself
        as_dict = ("raised", type(error), str(error))
    return ("built", type(obj), _state(obj), as_dict)


_CANDIDATES = ("1", 1, True, "value", 1.5)


def _typed(expected: Any) -> Any:
    """A value troposphere takes for a property of this expected type (its function validator
    accepts it), or ``WRONG`` where none of the usual ones is taken."""
    kinds = expected if isinstance(expected, tuple) else (expected,)
    for kind, value in ((str, "value"), (bool, True), (int, 1), (float, 1.5), (dict, {}), (list, [])):
        if kind in kinds:
            return value
    if isinstance(expected, list):
        return []
    if isinstance(expected, type) and issubclass(expected, BaseAWSObject):
        return expected()
    if isinstance(expected, type):
        return WRONG
    for value in _CANDIDATES:
        try:
            expected(value)
        except Exception:  # not a value this validator takes: the next one
            continue
        return value
    return WRONG


def _cases(cls: type[BaseAWSObject]) -> Iterator[tuple[str, Callable[[], BaseAWSObject]]]:
    """Each way ``__init__`` can go (every property's own check is troposphere's ``__setattr__``,
    which both call: the typed values go in one object, the wrong type in the first property)."""
    title = "Name1"
    typed = {
        name: value for name, (expected, _required) in cls.props.items() if (value := _typed(expected)) is not WRONG
    }
    yield "no keywords", lambda: cls(title)
    yield "no title", lambda: cls(None)
    yield "every property an intrinsic", lambda: cls(title, **dict.fromkeys(cls.props, HELPER))
    yield "every property typed", lambda: cls(title, **typed)
    yield "unknown property", lambda: cls(title, NotAProperty1=1)
    yield "title not alphanumeric", lambda: cls("not-alphanumeric")
    yield "attributes", lambda: cls(title, DependsOn=[HELPER], Condition="Cond", Metadata={"k": "v"})
    if issubclass(cls, AWSObject):
        yield "in a template", lambda: cls(title, template=Template(), validation=False)
    first = next(iter(cls.props), None)
    if first is not None:
        yield "wrong type", lambda: cls(title, **{first: WRONG})


class DefaultedQueue(Queue):
    """A subclass with class-level property values (troposphere sets those first, validated, unless
    given as keywords); troposphere's own classes have none."""

    VisibilityTimeout = 60
    FifoQueue = "yes"  # not a boolean troposphere takes: its error


@pytest.mark.parametrize("module", MODULES)
def test_fast_init_builds_what_troposphere_builds(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    classes = [*_classes(module), *([DefaultedQueue] if module == "troposphere.sqs" else [])]
    cases = [(f"{cls.__module__}.{cls.__name__}: {case}", build) for cls in classes for case, build in _cases(cls)]
    builds = [build for _case, build in cases]
    theirs, ours = _outcomes(ORIGINAL_INIT, builds), _outcomes(fast_init, builds)
    for (case, _build), their, our in zip(cases, theirs, ours, strict=True):
        assert our == their, case
    capsys.readouterr()  # troposphere reports a function validator's error on stderr too: read, not compared


def test_the_cases_reach_every_outcome() -> None:
    """The comparison above sees the modules of the layers' resources, built objects, each error
    kind and class-level defaults."""
    assert {"troposphere.ecs", "troposphere.iam", "troposphere.ec2", "troposphere.cloudfront"} <= set(MODULES)
    from troposphere.ecs import Service  # noqa: PLC0415

    seen = {case: _outcome(build) for case, build in _cases(Service)}
    assert seen["no keywords"][0] == "built"
    assert seen["unknown property"][1:] == (
        AttributeError,
        "AWS::ECS::Service object does not support attribute NotAProperty1",
    )
    assert seen["title not alphanumeric"][1:] == (ValueError, 'Name "not-alphanumeric" not alphanumeric')
    assert seen["wrong type"][0] == "raised"
    assert seen["every property typed"][0] == "built"
    assert seen["every property typed"][2]["properties"]["DesiredCount"] == "1"
    assert seen["every property an intrinsic"][0] == "built"
    assert seen["in a template"][2]["template"] == ["Name1"]
    assert "troposphere.sqs" in MODULES
    defaulted = {case: _outcome(build) for case, build in _cases(DefaultedQueue)}
    assert defaulted["no keywords"][:2] == ("raised", ValueError)  # FifoQueue "yes"
    assert defaulted["every property typed"][2]["properties"]["FifoQueue"] is True  # the keyword wins


def test_generate_installs_it_for_the_pinned_troposphere_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import generate  # noqa: F401, PLC0415 - its import installs fast_init

    assert troposphere.__version__ == troposphere_speed.VERSION
    assert BaseAWSObject.__init__ is fast_init
    assert troposphere_speed.install() is True  # again: nothing changes
    monkeypatch.setattr(BaseAWSObject, "__init__", ORIGINAL_INIT)
    monkeypatch.setattr(troposphere, "__version__", "9.9.9")
    assert troposphere_speed.install() is False
    assert BaseAWSObject.__init__ is ORIGINAL_INIT
    assert isinstance(HELPER, AWSHelperFn)
