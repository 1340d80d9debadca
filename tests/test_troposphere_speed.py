"""infra_templates.troposphere_speed's ``fast_init`` is troposphere's own ``BaseAWSObject.__init__``:
for every AWSObject, AWSProperty and declaration class of the troposphere modules a build imports,
an object built by each from the same arguments has the same state (``__dict__``) and the same
``to_dict()``, and a bad argument raises the same exception with the same message.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import awacs
import awacs.aws
import pytest
import troposphere
from troposphere import AWSHelperFn, AWSObject, BaseAWSObject, Ref, Sub, Tags, Template
from troposphere.sqs import Queue

from infra_templates import troposphere_speed
from infra_templates.troposphere_speed import ORIGINAL_AWACS_INIT, ORIGINAL_INIT, fast_awacs_init, fast_init


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
TAGS = Tags(Key1="value")


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
    accepts it; a list holds one such item), or ``WRONG`` where none of the usual ones is taken."""
    if isinstance(expected, list):
        item = _typed(expected[0]) if len(expected) == 1 else _typed(tuple(expected))
        return [] if item is WRONG else [item]
    if not isinstance(expected, (type, tuple)):
        return next((value for value in _CANDIDATES if _takes(expected, value)), WRONG)
    kinds = expected if isinstance(expected, tuple) else (expected,)
    made = {str: "value", bool: True, int: 1, float: 1.5, dict: {"k": "v"}, Tags: TAGS, list: ["value"]}
    made |= {kind: kind() for kind in kinds if isinstance(kind, type) and issubclass(kind, BaseAWSObject)}
    return next(
        (made[kind] for kind in (str, bool, int, float, dict, Tags, *kinds, list) if kind in kinds and kind in made),
        WRONG,
    )


def _takes(validator: Any, value: Any) -> bool:
    try:
        validator(value)
    except Exception:  # not a value this validator takes
        return False
    return True


def _shape(expected: Any) -> str:
    """How troposphere's ``__setattr__`` checks a property of this expected type."""
    if isinstance(expected, list):
        return (
            "a list of one validator"
            if len(expected) == 1 and callable(expected[0]) and not isinstance(expected[0], type)
            else "a list"
        )
    return "a validator" if callable(expected) and not isinstance(expected, type) else "a type"


def _cases(cls: type[BaseAWSObject]) -> Iterator[tuple[str, Callable[[], BaseAWSObject]]]:
    """Each way ``__init__`` can go: the class's own values, every property typed (one object) and
    an intrinsic function (another), and for the first property of each way ``__setattr__`` checks
    one (a type, a validator, a list, a list mapped through a validator): a value of no expected
    type, a ``Tags`` (an intrinsic function troposphere checks), and for a list an item of no
    expected type and an intrinsic function as an item."""
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
    firsts: dict[str, str] = {}
    for name, (expected, _required) in cls.props.items():
        firsts.setdefault(_shape(expected), name)
    for shape, name in firsts.items():
        values = {"wrong type": WRONG, "Tags": TAGS}
        if shape.startswith("a list"):
            values |= {
                "a string": "12",
                "wrong item": [WRONG],
                "intrinsic item": [HELPER],
                "typed and wrong items": [*typed.get(name, []), WRONG],
            }
        for case, value in values.items():
            yield f"{name} ({shape}): {case}", partial(cls, title, **{name: value})  # type: ignore[misc]


class DefaultedQueue(Queue):
    """A subclass with class-level property values (troposphere sets those first, validated, unless
    given as keywords); troposphere's own classes have none."""

    VisibilityTimeout = 60
    FifoQueue = "yes"  # not a boolean troposphere takes: its error


class OddNames(AWSObject):
    """Properties named as a resource attribute or as an attribute troposphere's ``__init__`` sets:
    its ``__setattr__`` takes those as such first (none of troposphere's classes has one)."""

    resource_type = "AWS::Odd::Names"
    props = {"Metadata": (dict, False), "resource": (dict, False), "Name": (str, False)}  # noqa: RUF012


EXTRA = {"troposphere.sqs": [DefaultedQueue, OddNames]}  # compared with the classes of the module


@pytest.mark.parametrize("module", MODULES)
def test_fast_init_builds_what_troposphere_builds(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    classes = [*_classes(module), *EXTRA.get(module, [])]
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
    assert seen["DesiredCount (a validator): wrong type"][1:] == (ValueError, "<wrong> is not a valid integer")
    assert seen["every property typed"][0] == "built"
    assert seen["every property typed"][2]["properties"]["DesiredCount"] == "1"
    assert seen["every property an intrinsic"][0] == "built"
    assert seen["in a template"][2]["template"] == ["Name1"]
    reached = Counter(
        (
            case.partition(": ")[0].partition(" (")[2] + ": " + case.partition(": ")[2] if " (" in case else case,
            outcome[0],
        )
        for module in MODULES
        for cls in _classes(module)
        for case, outcome in ((case, _outcome(build)) for case, build in _cases(cls))
    )
    for shape in ("a type)", "a validator)", "a list)", "a list of one validator)"):
        assert reached[(f"{shape}: wrong type", "raised")] > 0, shape
    for shape in ("a list)", "a list of one validator)"):
        assert reached[(f"{shape}: wrong item", "raised")] > 0, shape
    assert reached[("a list): intrinsic item", "built")] > 0
    assert reached[("a list of one validator): intrinsic item", "raised")] > 0  # its validator sees each item
    assert reached[("every property typed", "built")] > 0.95 * sum(len(_classes(module)) for module in MODULES)
    assert "troposphere.sqs" in MODULES
    defaulted = {case: _outcome(build) for case, build in _cases(DefaultedQueue)}
    assert defaulted["no keywords"][:2] == ("raised", ValueError)  # FifoQueue "yes"
    assert defaulted["every property typed"][2]["properties"]["FifoQueue"] is True  # the keyword wins


def test_generate_installs_them_for_the_pinned_versions_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import generate  # noqa: F401, PLC0415 - its import installs fast_init and fast_awacs_init

    assert troposphere.__version__ == troposphere_speed.VERSION
    assert awacs.__version__ == troposphere_speed.AWACS_VERSION
    assert BaseAWSObject.__init__ is fast_init
    assert awacs.AWSObject.__init__ is fast_awacs_init
    assert troposphere_speed.install() == (True, True)  # again: nothing changes
    monkeypatch.setattr(BaseAWSObject, "__init__", ORIGINAL_INIT)
    monkeypatch.setattr(awacs.AWSObject, "__init__", ORIGINAL_AWACS_INIT)
    monkeypatch.setattr(troposphere, "__version__", "9.9.9")
    monkeypatch.setattr(awacs, "__version__", "9.9.9")
    assert troposphere_speed.install() == (False, False)
    assert BaseAWSObject.__init__ is ORIGINAL_INIT
    assert awacs.AWSObject.__init__ is ORIGINAL_AWACS_INIT
    assert isinstance(HELPER, AWSHelperFn)


class _Document(awacs.AWSObject):
    """An awacs object made with its own props, a dictname and a name (as awacs' AWSObject allows)."""

    def __init__(self, name: str | None, **kwargs: Any) -> None:
        super().__init__(name, dictname="Document", props={"Sid": (str, True), "Items": ([str, int], False)}, **kwargs)


def _awacs_cases() -> Iterator[tuple[str, Callable[[], awacs.AWSObject]]]:
    """Each way awacs' ``AWSObject.__init__`` can go, for each of its classes (and ``_Document``)."""
    action = awacs.aws.Action("sqs", "SendMessage")
    statement = partial(awacs.aws.Statement, Effect=awacs.aws.Allow)
    typed: dict[str, Any] = {
        "Action": [action],
        "Condition": awacs.aws.Condition(awacs.aws.StringEquals("aws:PrincipalTag/Team", "a")),
        "NotAction": [action],
        "Principal": awacs.aws.Principal("Service", "sqs.amazonaws.com"),
        "Resource": ["*", Sub("arn:${AWS::Partition}:sqs:::q")],
        "NotResource": ["x"],
        "Sid": "Send",
    }
    yield "a statement, every property typed", partial(statement, **typed)
    yield "a statement without its required Effect", partial(awacs.aws.Statement, Sid="Send")
    yield "a statement, an effect awacs refuses", partial(awacs.aws.Statement, Effect="Maybe")
    yield "a statement, an unknown property", partial(statement, Actions=[action])
    for name in typed:
        yield f"a statement, {name} of the wrong type", partial(statement, **{name: WRONG})
    yield "a statement, an action list with a string", partial(statement, Action=["sqs:SendMessage"])
    yield "a statement, an intrinsic function as Sid", partial(statement, Sid=Sub("${AWS::StackName}"))
    yield "a statement, a list of actions as a tuple", partial(statement, Action=(action,))
    for kind in (awacs.aws.Policy, awacs.aws.PolicyDocument):
        yield f"{kind.__name__}", partial(kind, Version="2012-10-17", Statement=[statement(Sid="A")])
        yield f"{kind.__name__}, a statement as a dict", partial(kind, Statement=[{"Sid": "A"}])
        yield f"{kind.__name__}, no statement", partial(kind, Id="x")
    yield "a document", partial(_Document, "Doc1", Sid="a", Items=["x", 1])
    yield "a document, a name not alphanumeric", partial(_Document, "doc-1", Sid="a")
    yield "a document, an item of neither type", partial(_Document, None, Items=[1.5])


def _awacs_outcomes(init: Callable[..., None], builds: list[Callable[[], awacs.AWSObject]]) -> list[tuple[Any, ...]]:
    installed = awacs.AWSObject.__init__
    awacs.AWSObject.__init__ = init  # type: ignore[method-assign]
    try:
        return [_awacs_outcome(build) for build in builds]
    finally:
        awacs.AWSObject.__init__ = installed  # type: ignore[method-assign]


def _awacs_outcome(build: Callable[[], awacs.AWSObject]) -> tuple[Any, ...]:
    try:
        obj = build()
    except Exception as error:  # the outcome compared is the exception itself
        return ("raised", type(error), str(error))
    try:
        as_json: Any = obj.JSONrepr()
    except Exception as error:  # the outcome compared is the exception itself
        as_json = ("raised", type(error), str(error))
    return ("built", type(obj), dict(obj.__dict__), as_json)


def test_fast_awacs_init_builds_what_awacs_builds() -> None:
    cases = list(_awacs_cases())
    builds = [build for _case, build in cases]
    theirs, ours = _awacs_outcomes(ORIGINAL_AWACS_INIT, builds), _awacs_outcomes(fast_awacs_init, builds)
    for (case, _build), their, our in zip(cases, theirs, ours, strict=True):
        assert our == their, case
    seen = {case: their[0] for (case, _build), their in zip(cases, theirs, strict=True)}
    assert seen["a statement, every property typed"] == seen["a document"] == "built"
    assert seen["a statement, Sid of the wrong type"] == seen["a document, an item of neither type"] == "raised"
    assert seen["a statement, an intrinsic function as Sid"] == "built"  # awacs takes any AWSHelperFn
    kept = len(troposphere_speed._awacs_props)
    _awacs_outcomes(fast_awacs_init, [partial(_Document, "Doc1", Sid="a")] * 5)
    assert len(troposphere_speed._awacs_props) == kept  # props made for one object are not kept


def _templates_to_render() -> Iterator[tuple[str, Template]]:
    """Templates whose objects take each of render._plain_dict's ways through troposphere's to_dict."""
    from troposphere import Parameter, Sub  # noqa: PLC0415
    from troposphere.cloudformation import WaitConditionHandle  # noqa: PLC0415
    from troposphere.ecs import ContainerDefinition, PortMapping, TaskDefinition  # noqa: PLC0415
    from troposphere.sqs import QueuePolicy  # noqa: PLC0415

    def template(*resources: BaseAWSObject, parameters: tuple[Parameter, ...] = ()) -> Template:
        t = Template()
        for parameter in parameters:
            t.add_parameter(parameter)
        for resource in resources:
            t.add_resource(resource)
        return t

    task = partial(TaskDefinition, "Task", ContainerDefinitions=[ContainerDefinition(Name="app", Image="i")])
    yield "valid", template(task(), Queue("Jobs", Tags=TAGS, RedrivePolicy=Sub("x")))
    yield "a required property missing", template(QueuePolicy("Policy", Queues=["q"]))
    yield "a nested required property missing", template(task(ContainerDefinitions=[ContainerDefinition(Name="app")]))
    yield "missing but not validated", template(QueuePolicy("Policy", Queues=["q"]).no_validation())
    yield (
        "an empty nested object",
        template(task(ContainerDefinitions=[ContainerDefinition(Name="a", Image="i", PortMappings=[PortMapping()])])),
    )
    yield "a resource without properties", template(WaitConditionHandle("Handle"))
    yield "an object's own validate()", template(parameters=(Parameter("Size", Type="Number", Default="many"),))
    statement = awacs.aws.Statement(
        Effect=awacs.aws.Allow, Action=[awacs.aws.Action("sqs", "SendMessage")], Resource=["*"]
    )
    policy = partial(QueuePolicy, "Policy", Queues=["q"])
    yield "an awacs policy", template(policy(PolicyDocument=awacs.aws.PolicyDocument(Statement=[statement])))
    # awacs objects with a to_dict of their own: a property of that name (awacs' __getattr__ gives
    # it: troposphere calls it, a string, and fails), an attribute (called)
    named = _Document("Doc1", Sid="a")
    named.properties["to_dict"] = "a property"
    yield "an awacs object with a to_dict property", template(policy(PolicyDocument={}, Metadata={"Doc": named}))
    action = awacs.aws.Action("sqs", "SendMessage")
    action.to_dict = lambda: {"Action": "replaced"}  # type: ignore[attr-defined]
    yield (
        "an awacs object with a to_dict attribute",
        template(policy(PolicyDocument={}, Metadata={"Action": action})),
    )
    ref = Ref("Elsewhere")
    ref.to_dict = lambda: {"Ref": "Replaced"}  # type: ignore[method-assign]
    yield "an intrinsic function with a to_dict attribute", template(policy(PolicyDocument={}, Metadata={"R": ref}))
    queue = Queue("Jobs")
    object.__setattr__(queue, "to_dict", lambda: {"Type": "AWS::SQS::Queue", "Replaced": True})
    yield "a troposphere object with a to_dict attribute", template(queue)


@pytest.mark.parametrize("case", [case for case, _template in _templates_to_render()])
def test_render_plain_dict_is_troposphere_s_to_dict(case: str) -> None:
    """render._plain_dict takes troposphere's BaseAWSObject.to_dict() and AWSHelperFn.to_dict() steps
    itself: the same data, or the same error, as troposphere's own Template.to_dict()."""
    from infra_templates import render  # noqa: PLC0415

    template = dict(_templates_to_render())[case]
    try:
        theirs: Any = template.to_dict()
    except Exception as error:  # the outcome compared is the exception itself
        theirs = (type(error), str(error))
    try:
        ours: Any = render._plain_dict(template)
    except Exception as error:  # the outcome compared is the exception itself
        ours = (type(error), str(error))
    assert ours == theirs
    assert isinstance(theirs, dict) == (
        case
        in (
            "valid",
            "missing but not validated",
            "an empty nested object",
            "a resource without properties",
            "an awacs policy",
            "an awacs object with a to_dict attribute",
            "an intrinsic function with a to_dict attribute",
            "a troposphere object with a to_dict attribute",
        )
    )
