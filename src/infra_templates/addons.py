"""Add-ons and overrides: CloudFormation the generator does not know, from files beside the settings.

What AWS Copilot users had as ``copilot/<svc>/addons/*.yml`` and ``overrides/cfn.patches.yml``,
per environment, in ``<settings>/addons/<env>/``::

    addons/<env>/stacks/<name>.yaml     a plain CloudFormation template: the stack
                                        {project}-{env}-addon-<name>, deployed after the stacks
                                        whose exports it imports
    addons/<env>/services/<svc>.yaml    Resources (and Conditions, Outputs) merged into the service's
                                        stack, and TaskRoleStatements: IAM statements added to the
                                        service's task role (an AWS::IAM::Policy attached to it)
    addons/<env>/overrides.yaml         a list of {stack, resource, path, op, value}: one property
                                        of one generated resource, changed after generation

An add-on adds: a logical ID (resource, condition, output) that clashes with a generated one is
refused, naming the file and field. An override changes what exists (``op: replace`` or
``remove``) or adds below what exists (``op: add``); it cannot change a resource's Type, its
Condition, an IAM role's permissions boundary, the deployer stack (the roles every deployment runs
with), nor let a stateful resource (:mod:`infra_templates.stateful`) go with its stack (a
DeletionPolicy or UpdateReplacePolicy removed or set to Delete). Each overridden resource records
the override in its ``Metadata`` (``InfraTemplatesOverrides``), so the change preview shows it.

Files are YAML with CloudFormation's short forms (``!Ref``, ``!GetAtt``, ``!Sub``...; "Intrinsic
function reference", CloudFormation Template Reference), read with a small loader rather than
cfn-lint's (importing any ``cfnlint`` module loads the whole linter: see :mod:`infra_templates.catalog`).
A problem is an :class:`AddonError` whose lines name the file, the field and what would be valid.

Add-on stacks and service add-ons get the environment's tags (the resource's tag property as its
provider schema names it, ``tagging.tagProperty``), and each IAM role the environment's
permissions boundary, like every generated resource.
"""

import copy
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict

from infra_templates.render import SECTION_ORDER
from infra_templates.settings.common import construct_mapping_once
from infra_templates.stateful import KEEPING_POLICIES, STATEFUL_TYPES

FOLDER = "addons"  # <settings>/addons/<env>/
STACKS = "stacks"
SERVICES = "services"
OVERRIDES = "overrides.yaml"
LAYER_PREFIX = "addon-"  # an add-on stack's layer (its files in output/<env>/): addon-<name>
MAX_BYTES = 1024 * 1024  # a template CloudFormation takes through S3 is at most 1 MB
ADDON_NAME = r"^[a-z][a-z0-9-]{0,31}$"
OVERRIDES_METADATA = "InfraTemplatesOverrides"
TASK_ROLE_POLICY = "AddonTaskRolePolicy"  # the AWS::IAM::Policy a service add-on's statements become
DEPLOYER_LAYER = "deployer"  # never overridden: its roles deploy everything else
# Top-level sections of a template ("Template anatomy", CloudFormation User Guide). Transform is left
# out: a macro (SAM included) rewrites the template at deploy time, after the gate, and needs
# CAPABILITY_AUTO_EXPAND, which the deploy does not pass.
TEMPLATE_SECTIONS = tuple(section for section in SECTION_ORDER if section != "Transform")
SERVICE_SECTIONS = ("Conditions", "Resources", "Outputs", "TaskRoleStatements")
STATEMENT_KEYS = ("Sid", "Effect", "Action", "Resource", "Condition")
OVERRIDE_KEYS = ("stack", "resource", "path", "op", "value", "reason")
OVERRIDE_OPS = ("replace", "add", "remove")
# What of a resource an override may reach ("Resource attribute reference"; Type and Condition
# left out: a new Type replaces the resource, a Condition can drop it).
OVERRIDE_ROOTS = (
    "Properties",
    "DeletionPolicy",
    "UpdateReplacePolicy",
    "UpdatePolicy",
    "CreationPolicy",
    "DependsOn",
    "Metadata",
)
RETENTION_ATTRIBUTES = ("DeletionPolicy", "UpdateReplacePolicy")
# Each short form and the full function it stands for ("Intrinsic function reference" and "Condition
# functions", CloudFormation Template Reference).
SHORT_FORMS = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "Base64",
            "Cidr",
            "FindInMap",
            "GetAtt",
            "GetAZs",
            "ImportValue",
            "Join",
            "Length",
            "Select",
            "Split",
            "Sub",
            "ToJsonString",
            "Transform",
            "And",
            "Equals",
            "If",
            "Not",
            "Or",
        )
    },
}
# ${Project} and ${Environment} in an Fn::ImportValue's Fn::Sub are resolved when the template is
# built, so one add-on file serves every environment and the import is a literal name the wiring
# check and the deploy order can follow.
_NAME_VARIABLES = re.compile(r"\$\{([^}!]*)\}")


class AddonError(Exception):
    """Add-on files refused: ``problems`` are lines naming the file, the field and the fix."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AddonStack(_Frozen):
    """An extra stack: its name (``addon-<name>`` is its layer) and its template as data."""

    name: str
    file: str  # as messages show it
    source: str  # relative to the settings folder, as the template records it (the same from any folder)
    template: dict[str, Any]


class ServiceAddon(_Frozen):
    """What a service's stack gains: resources, conditions and outputs, and task role statements."""

    service: str
    file: str
    conditions: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    statements: list[dict[str, Any]] = []


class Override(_Frozen):
    """One change to one generated resource; ``where`` is the file and list index, for messages."""

    where: str  # file and list index, as messages show them
    source: str  # the same relative to the settings folder, as the resource's Metadata records it
    stack: str
    resource: str
    path: str
    op: str
    value: Any = None
    reason: str = ""


class Addons(_Frozen):
    """Every add-on of one environment (none by default)."""

    stacks: tuple[AddonStack, ...] = ()
    services: dict[str, ServiceAddon] = {}
    overrides: tuple[Override, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.stacks or self.services or self.overrides)


# --- reading ----------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML's plain types plus CloudFormation's short forms; a key given twice is refused."""

    construct_mapping = construct_mapping_once


def _short_form(function: str) -> Callable[[yaml.SafeLoader, yaml.Node], dict[str, Any]]:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if function == "Fn::GetAtt":  # !GetAtt Name.Attribute: the attribute may hold dots
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {function: value}

    return construct


for _short, _function in SHORT_FORMS.items():
    _Loader.add_constructor(f"!{_short}", _short_form(_function))


def read_yaml(path: Path, shown: str) -> Any:
    """The data of one add-on file; AddonError names ``shown`` (and the line) when it is not readable."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise AddonError([f"{shown}: is {size:,} bytes; a template is at most {MAX_BYTES:,} (1 MB)"])
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AddonError([f"{shown}: is not UTF-8 text"]) from None
    except OSError as error:
        raise AddonError([f"{shown}: cannot be read ({error.strerror})"]) from None
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader: a SafeLoader with CloudFormation's tags
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = error.problem or "invalid YAML"
        if "could not determine a constructor" in problem:
            problem += f"; CloudFormation's short forms are {', '.join('!' + s for s in SHORT_FORMS)}"
        raise AddonError([f"{shown}{where}: {problem}"]) from None
    except (yaml.YAMLError, RecursionError) as error:
        raise AddonError([f"{shown}: is not valid YAML ({type(error).__name__})"]) from None


def load(folder: Path, environment: str, services: Iterable[str], shown: Callable[[Path], str]) -> Addons:
    """The add-ons of ``environment`` under ``folder/addons/<environment>/`` (none if it is absent).

    ``services`` are the environment's services (a service add-on names one); ``shown`` turns a
    path into how messages show it. Raises AddonError listing every problem found.
    """
    root = folder / FOLDER / environment
    if not root.exists():
        return Addons()
    if not root.is_dir():
        raise AddonError([f"{shown(root)}: must be a folder ({STACKS}/, {SERVICES}/, {OVERRIDES})"])
    problems: list[str] = []
    known = sorted(services)
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or entry.name in (STACKS, SERVICES, OVERRIDES):
            continue
        problems.append(
            f"{shown(entry)}: is not an add-on; {shown(root)}/ holds {STACKS}/<name>.yaml, "
            f"{SERVICES}/<service>.yaml and {OVERRIDES}"
        )
    source = lambda path: path.relative_to(folder).as_posix()  # noqa: E731
    stacks = list(_each(root / STACKS, shown, problems, lambda p, f: _stack(p, f, source(p), problems)))
    by_service: dict[str, ServiceAddon] = {}
    for path in _files(root / SERVICES, shown, problems):
        if path.stem not in known:
            problems.append(
                f"{shown(path)}: is not a service of {environment}{_did_you_mean(path.stem, known)}; "
                f"services are {', '.join(known)}"
            )
            continue
        addon = _service(path, shown(path), path.stem, problems)
        if addon is not None:
            by_service[path.stem] = addon
    overrides = _overrides(root / OVERRIDES, shown, source, problems) if (root / OVERRIDES).exists() else []
    if problems:
        raise AddonError(problems)
    return Addons(stacks=tuple(stacks), services=by_service, overrides=tuple(overrides))


def unknown_environments(folder: Path, environments: Sequence[str], shown: Callable[[Path], str]) -> list[str]:
    """A folder of ``folder/addons/`` that names no environment: refused, not silently ignored."""
    root = folder / FOLDER
    if not root.is_dir():
        return []
    return [
        f"{shown(entry)}: is not an environment{_did_you_mean(entry.name, environments)}; add-ons go in "
        f"{shown(root)}/<environment>/ (environments: {', '.join(environments)})"
        for entry in sorted(root.iterdir())
        if not entry.name.startswith(".") and entry.name not in environments
    ]


def _files(folder: Path, shown: Callable[[Path], str], problems: list[str]) -> list[Path]:
    if not folder.exists():
        return []
    if not folder.is_dir():
        problems.append(f"{shown(folder)}: must be a folder of .yaml files")
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.suffix != ".yaml" or not path.is_file():
            problems.append(f"{shown(path)}: is not a .yaml file; name it <name>.yaml (a .yml is not read)")
        else:
            found.append(path)
    return found


def _each(
    folder: Path,
    shown: Callable[[Path], str],
    problems: list[str],
    read: Callable[[Path, str], AddonStack | None],
) -> Iterator[AddonStack]:
    for path in _files(folder, shown, problems):
        if not re.fullmatch(ADDON_NAME, path.stem):
            problems.append(
                f"{shown(path)}: {path.stem!r} is not an add-on stack name: lower-case letters, digits and "
                "hyphens, starting with a letter, at most 32 (it becomes part of the stack name)"
            )
            continue
        stack = read(path, shown(path))
        if stack is not None:
            yield stack


def _mapping(data: Any, where: str, problems: list[str], what: str = "a mapping") -> dict[str, Any] | None:
    if not isinstance(data, dict):
        problems.append(f"{where}: is {_kind(data)}, not {what}")
        return None
    return data


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "true/false"}.get(type(value), "a number")


def _stack(path: Path, shown: str, source: str, problems: list[str]) -> AddonStack | None:
    try:
        data = read_yaml(path, shown)
    except AddonError as error:
        problems.extend(error.problems)
        return None
    template = _mapping(data, shown, problems, "a CloudFormation template (a mapping with Resources)")
    if template is None:
        return None
    before = len(problems)
    for key in template:
        if key not in TEMPLATE_SECTIONS:
            hint = (
                ": macros (SAM included) change the template after the gate and are not supported"
                if key == "Transform"
                else _did_you_mean(str(key), TEMPLATE_SECTIONS)
            )
            problems.append(
                f"{shown}: {key}: is not a template section{hint}; sections: {', '.join(TEMPLATE_SECTIONS)}"
            )
    if not template.get("Resources"):
        problems.append(f"{shown}: Resources: is required (a template declares at least one resource)")
    _resources(template.get("Resources", {}), shown, problems)
    for name, spec in (template.get("Parameters") or {}).items():
        if not isinstance(spec, dict) or "Default" not in spec:
            problems.append(
                f"{shown}: Parameters.{name}: has no Default; the deploy passes no parameter values to an "
                "add-on stack (use a Default, a Mappings entry, or an SSM parameter type with its name as Default)"
            )
    for section in ("Parameters", "Mappings", "Conditions", "Outputs", "Metadata", "Rules"):
        if section in template:
            _mapping(template[section], f"{shown}: {section}", problems)
    if len(problems) > before:
        return None
    return AddonStack(name=path.stem, file=shown, source=source, template=template)


def _resources(resources: Any, where: str, problems: list[str], field: str = "Resources") -> None:
    if _mapping(resources, f"{where}: {field}", problems) is None:
        return
    for logical_id, resource in resources.items():
        if not re.fullmatch(r"[A-Za-z0-9]{1,255}", str(logical_id)):
            problems.append(
                f"{where}: {field}.{logical_id}: a logical ID is alphanumeric (A-Za-z0-9), at most 255 characters"
            )
        if not isinstance(resource, dict) or not isinstance(resource.get("Type"), str):
            problems.append(f"{where}: {field}.{logical_id}: a resource is a mapping with a Type (AWS::Service::Thing)")
        elif resource["Type"] == "AWS::IAM::Role" and "PermissionsBoundary" in resource.get("Properties", {}):
            problems.append(
                f"{where}: {field}.{logical_id}.Properties.PermissionsBoundary: is set for you (the environment's "
                "permissions boundary, which the deployer requires on every role it creates); remove it"
            )


def _service(path: Path, shown: str, service: str, problems: list[str]) -> ServiceAddon | None:
    try:
        data = _mapping(read_yaml(path, shown), shown, problems)
    except AddonError as error:
        problems.extend(error.problems)
        return None
    if data is None:
        return None
    before = len(problems)
    for key in data:
        if key not in SERVICE_SECTIONS:
            problems.append(
                f"{shown}: {key}: is not a service add-on section{_did_you_mean(str(key), SERVICE_SECTIONS)}; "
                f"sections: {', '.join(SERVICE_SECTIONS)} (an extra stack goes in {STACKS}/<name>.yaml)"
            )
    if "Resources" in data:
        _resources(data["Resources"], shown, problems)
    for section in ("Conditions", "Outputs"):
        if section in data:
            _mapping(data[section], f"{shown}: {section}", problems)
    statements = data.get("TaskRoleStatements", [])
    if not isinstance(statements, list):
        problems.append(f"{shown}: TaskRoleStatements: is {_kind(statements)}, not a list of IAM statements")
        statements = []
    sids: set[str] = set()
    for index, statement in enumerate(statements):
        _statement(statement, f"{shown}: TaskRoleStatements[{index}]", sids, problems)
    if len(problems) > before:
        return None
    return ServiceAddon(
        service=service,
        file=shown,
        conditions=data.get("Conditions") or {},
        resources=data.get("Resources") or {},
        outputs=data.get("Outputs") or {},
        statements=statements,
    )


def _statement(statement: Any, where: str, sids: set[str], problems: list[str]) -> None:
    """An IAM statement as this project writes them: a Sid, Allow or Deny, actions and resources
    named (IAM JSON policy elements reference; NotAction and NotResource are not accepted: they
    grant everything not listed)."""
    if _mapping(statement, where, problems) is None:
        return
    for key in statement:
        if key not in STATEMENT_KEYS:
            problems.append(f"{where}.{key}: is not accepted here; a statement has {', '.join(STATEMENT_KEYS)}")
    sid = statement.get("Sid")
    if not isinstance(sid, str) or not re.fullmatch(r"[A-Za-z0-9]+", sid):
        problems.append(f"{where}.Sid: is required, letters and digits only (IAM's Sid element)")
    elif sid in sids:
        problems.append(f"{where}.Sid = {sid!r}: is given twice; each statement has its own Sid")
    else:
        sids.add(sid)
    if statement.get("Effect") not in ("Allow", "Deny"):
        problems.append(f"{where}.Effect: must be Allow or Deny")
    for key in ("Action", "Resource"):
        value = statement.get(key)
        if value is None or value == []:
            problems.append(f"{where}.{key}: is required")
        elif key == "Action" and not all(
            isinstance(a, str) and re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9*]+", a)
            for a in (value if isinstance(value, list) else [value])
        ):
            problems.append(f"{where}.Action: each action is service:Name (s3:GetObject), as IAM writes them")


def _overrides(
    path: Path, shown: Callable[[Path], str], source: Callable[[Path], str], problems: list[str]
) -> list[Override]:
    where = shown(path)
    try:
        data = read_yaml(path, where)
    except AddonError as error:
        problems.extend(error.problems)
        return []
    if not isinstance(data, list):
        problems.append(f"{where}: is {_kind(data)}, not a list of overrides (- stack: ..., resource: ..., path: ...)")
        return []
    found = []
    for index, item in enumerate(data):
        at = f"{where}: [{index}]"
        if _mapping(item, at, problems) is None:
            continue
        mistakes = _override_problems(item, at)
        problems.extend(mistakes)
        if not mistakes:
            found.append(
                Override(
                    where=at,
                    source=f"{source(path)}[{index}]",
                    stack=item["stack"],
                    resource=item["resource"],
                    path=item["path"],
                    op=item.get("op", "replace"),
                    value=item.get("value"),
                    reason=item.get("reason", ""),
                )
            )
    return found


def _override_problems(item: dict[str, Any], at: str) -> list[str]:
    problems = [
        f"{at}.{key}: is not an override key{_did_you_mean(str(key), OVERRIDE_KEYS)}; keys: {', '.join(OVERRIDE_KEYS)}"
        for key in item
        if key not in OVERRIDE_KEYS
    ]
    problems += [
        f"{at}.{key}: is required (a string)"
        for key in ("stack", "resource", "path")
        if not isinstance(item.get(key), str) or not item[key]
    ]
    op = item.get("op", "replace")
    if op not in OVERRIDE_OPS:
        problems.append(f"{at}.op = {op!r}: must be one of {', '.join(OVERRIDE_OPS)}")
    if op != "remove" and "value" not in item:
        problems.append(f"{at}.value: is required for op {op}")
    if op == "remove" and "value" in item:
        problems.append(f"{at}.value: op remove takes no value")
    if item.get("stack") == DEPLOYER_LAYER:
        problems.append(
            f"{at}.stack = 'deployer': is not overridden; its roles deploy every other stack (change the "
            "resources of the other stacks and the deployer follows)"
        )
    if isinstance(item.get("path"), str):
        problems.extend(f"{at}.path = {item['path']!r}: {p}" for p in _path_problems(item["path"]))
    if not isinstance(item.get("reason", ""), str):
        problems.append(f"{at}.reason: is text")
    return problems


def _pointer(path: str) -> list[str]:
    """The reference tokens of a JSON pointer (RFC 6901: ``~1`` is ``/``, ``~0`` is ``~``)."""
    return [token.replace("~1", "/").replace("~0", "~") for token in path.split("/")[1:]]


def _path_problems(path: str) -> list[str]:
    if not path.startswith("/"):
        return ["is a JSON pointer into the resource, starting with / (/Properties/BackupRetentionPeriod)"]
    tokens = _pointer(path)
    if tokens[0] not in OVERRIDE_ROOTS:
        return [f"reaches {tokens[0]!r}; an override reaches {', '.join(OVERRIDE_ROOTS)} (never Type or Condition)"]
    if tokens[:2] == ["Properties", "PermissionsBoundary"]:
        return ["an IAM role's permissions boundary is the environment's and is not overridden"]
    return []


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    import difflib  # noqa: PLC0415 - only for a mistyped value: 5 ms a build need not import

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# --- building ---------------------------------------------------------------------------------


class StackLike(Protocol):
    """What :func:`extend` needs of a built stack (``pipeline.Stack`` is one)."""

    name: str
    layer: str
    body: dict[str, Any]
    depends_on: list[str]

    @property
    def exports(self) -> list[str]: ...

    @property
    def imports(self) -> list[str]: ...


@dataclass(frozen=True)
class Target:
    """The stack add-on content lands in: its name, environment, region and tags, and the permissions
    boundary (an ARN or an intrinsic giving one) each added IAM role gets (None: none)."""

    stack: str
    project: str
    environment: str
    region: str
    tags: Mapping[str, str]
    boundary: Any

    @property
    def names(self) -> dict[str, str]:
        """What ``${...}`` in an imported or exported name stands for, resolved when built."""
        return {"Project": self.project, "Environment": self.environment, "AWS::StackName": self.stack}


def stack_body(addon: AddonStack, target: Target) -> dict[str, Any]:
    """An add-on stack's template as it is written: names resolved, tags and boundary added.

    Raises AddonError when an output's export name is not a name known when built.
    """
    body = {"AWSTemplateFormatVersion": "2010-09-09", **_plain(addon.template)}
    body.setdefault("Description", f"{target.stack}: add-on from {addon.source}")
    body = _resolve_imports(body, target.names)
    problems = list(_resolve_exports(body.get("Outputs", {}), target.names, addon.file))
    if problems:
        raise AddonError(problems)
    _dress(body["Resources"], body["Resources"], target)
    return body


def _resolve_exports(outputs: dict[str, Any], names: Mapping[str, str], file: str) -> Iterator[str]:
    """Each output's ``Export.Name`` as a literal (``!Sub "${AWS::StackName}-QueueArn"`` resolved), in
    place: the manifest, the wiring check and the deploy order read export names as text."""
    for key, output in outputs.items():
        export = output.get("Export") if isinstance(output, dict) else None
        if export is None:
            continue
        name = export.get("Name") if isinstance(export, dict) else None
        if isinstance(name, dict) and set(name) == {"Fn::Sub"} and isinstance(name["Fn::Sub"], str):
            text = name["Fn::Sub"]
            if set(_NAME_VARIABLES.findall(text)) <= set(names):
                name = export["Name"] = _NAME_VARIABLES.sub(lambda m: names[m.group(1)], text)
        if not isinstance(name, str):
            yield (
                f"{file}: Outputs.{key}.Export.Name: must be a name known when the template is built: text, or "
                "!Sub with only ${AWS::StackName}, ${Project} and ${Environment}"
            )


def merge_service(body: dict[str, Any], addon: ServiceAddon, role: str, target: Target) -> dict[str, Any]:
    """``body`` (a service's stack, not changed) with ``addon`` merged in: a new template.

    ``role`` is the logical ID of the task role the statements are attached to. Raises AddonError
    when a logical ID clashes with a generated one.
    """
    merged = copy.deepcopy(body)
    problems = []
    generated_resources = merged.setdefault("Resources", {})
    if addon.statements and role not in generated_resources:
        problems.append(f"{addon.file}: TaskRoleStatements: stack {target.stack} has no role {role} to attach them to")
    added = _plain(addon.resources)
    if addon.statements:
        added[TASK_ROLE_POLICY] = {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyName": "addon",
                "Roles": [{"Ref": role}],
                "PolicyDocument": {"Version": "2012-10-17", "Statement": _plain(addon.statements)},
            },
        }
    added = _resolve_imports(added, target.names)
    outputs = _resolve_imports(_plain(addon.outputs), target.names)
    problems.extend(_resolve_exports(outputs, target.names, addon.file))
    for section, items in (("Conditions", addon.conditions), ("Resources", added), ("Outputs", outputs)):
        generated = merged.setdefault(section, {})
        for logical_id, value in items.items():
            if logical_id in generated:
                field = (
                    "TaskRoleStatements"
                    if logical_id == TASK_ROLE_POLICY and section == "Resources"
                    else (f"{section}.{logical_id}")
                )
                what = generated[logical_id].get("Type", "") if section == "Resources" else section[:-1].lower()
                problems.append(
                    f"{addon.file}: {field}: clashes with the generated {what} {logical_id} of stack "
                    f"{target.stack}; an add-on adds and cannot replace (pick another logical ID; to change one "
                    f"property of a generated resource use {OVERRIDES})"
                )
            else:
                generated[logical_id] = _plain(value)
        if not generated:
            del merged[section]
    if problems:
        raise AddonError(problems)
    _dress(merged["Resources"], added, target)
    return merged


def apply_overrides(
    stacks: Sequence[StackLike], overrides: Sequence[Override], stack_name: Callable[[str], str]
) -> dict[str, dict[str, Any]]:
    """The bodies ``overrides`` change, as new templates by stack name (the stacks are not changed).

    Raises AddonError naming the override when its stack, resource or path is not there, or when it
    would let a stateful resource go with its stack.
    """
    by_layer = {s.layer: s for s in stacks}
    changed: dict[str, dict[str, Any]] = {}
    problems = []
    for override in overrides:
        stack = by_layer.get(override.stack)
        if stack is None:
            problems.append(
                f"{override.where}.stack = {override.stack!r}: is not a stack of this environment"
                f"{_did_you_mean(override.stack, by_layer)}; stacks (output/<env>/<stack>.yaml): "
                f"{', '.join(sorted(by_layer))}"
            )
            continue
        body = changed.setdefault(stack.name, copy.deepcopy(stack.body))
        resources = body.get("Resources", {})
        resource = resources.get(override.resource)
        if resource is None:
            problems.append(
                f"{override.where}.resource = {override.resource!r}: stack {stack_name(override.stack)} has no such "
                f"resource{_did_you_mean(override.resource, resources)}"
            )
            continue
        problem = _apply(resource, override)
        if problem:
            problems.append(f"{override.where}.path = {override.path!r}: {problem}")
            continue
        note = f"{override.source}: {override.op} {override.path}" + (
            f" ({override.reason})" if override.reason else ""
        )
        resource.setdefault("Metadata", {}).setdefault(OVERRIDES_METADATA, []).append(note)
    if problems:
        raise AddonError(problems)
    return changed


def _apply(resource: dict[str, Any], override: Override) -> str:
    """Apply one override to ``resource`` in place; the problem, or "" when applied."""
    tokens = _pointer(override.path)
    if (
        tokens[0] in RETENTION_ATTRIBUTES
        and resource.get("Type") in STATEFUL_TYPES
        and (override.op == "remove" or override.value not in KEEPING_POLICIES)
    ):
        return (
            f"{resource['Type']} holds state: its {tokens[0]} stays one of {', '.join(sorted(KEEPING_POLICIES))} "
            "(an override cannot let it go with the stack; DeletionPolicy attribute, CloudFormation Template "
            "Reference)"
        )
    parent: Any = resource
    for depth, token in enumerate(tokens[:-1]):
        parent, problem = _step(parent, token, "/" + "/".join(tokens[: depth + 1]))
        if problem:
            return problem
    if isinstance(parent, dict):
        return _apply_in_mapping(parent, tokens[-1], override)
    if isinstance(parent, list):
        return _apply_in_list(parent, tokens[-1], override)
    return "its parent is a single value, not a mapping or a list"


def _apply_in_mapping(parent: dict[str, Any], key: str, override: Override) -> str:
    if override.op == "add":
        if key in parent:
            return "is there already; use op: replace to change it"
        parent[key] = _plain(override.value)
        return ""
    if key not in parent:
        there = f" (set here: {', '.join(sorted(map(str, parent)))})" if parent else ""
        return f"is not set on this resource{_did_you_mean(key, parent)}; use op: add to set it{there}"
    if override.op == "remove":
        del parent[key]
    else:
        parent[key] = _plain(override.value)
    return ""


def _apply_in_list(parent: list[Any], token: str, override: Override) -> str:
    """RFC 6902 on an array: add inserts at the index (``-``: at the end), replace and remove need one."""
    if override.op == "add" and token == "-":
        parent.append(_plain(override.value))
        return ""
    if not token.isdigit() or int(token) > len(parent) - (0 if override.op == "add" else 1):
        return f"{token!r} is not an index of that list ({len(parent)} items; '-' adds at the end)"
    if override.op == "add":
        parent.insert(int(token), _plain(override.value))
    elif override.op == "remove":
        del parent[int(token)]
    else:
        parent[int(token)] = _plain(override.value)
    return ""


def _step(node: Any, token: str, where: str) -> tuple[Any, str]:
    if isinstance(node, dict):
        if token in node:
            return node[token], ""
        return None, f"{where} is not set on this resource{_did_you_mean(token, node)}"
    if isinstance(node, list) and token.isdigit() and int(token) < len(node):
        return node[int(token)], ""
    return None, f"{where} is not there (the value above it is {_kind(node)})"


def extend(
    stacks: list[Any],
    addons: Addons,
    new_stack: Callable[[AddonStack], Any],
    stack_name: Callable[[str], str],
) -> list[Any]:
    """``stacks`` (in deploy order) with the add-on stacks placed and the overrides applied.

    Each add-on stack comes right after the last stack whose export it imports (after the first
    stack when it imports none: the deployer's roles come first), so the stacks after it may
    import its exports; each stack that imports an add-on stack's export depends on it.
    """
    if not addons:
        return stacks
    ordered = list(stacks)
    pending = [new_stack(addon) for addon in sorted(addons.stacks, key=lambda a: a.name)]
    # An add-on importing another's exports waits for it (a cycle: placed anyway, the wiring check says why).
    while pending:
        exporters = {name: s for s in ordered for name in s.exports}
        ready = [s for s in pending if not any(_from_pending(n, pending, s) for n in s.imports)] or pending[:1]
        for stack in ready:
            sources = [exporters[n] for n in stack.imports if n in exporters]
            stack.depends_on.extend(sorted({s.name for s in sources}))
            at = max((ordered.index(s) + 1 for s in sources), default=min(1, len(ordered)))
            ordered.insert(at, stack)
            pending.remove(stack)
    changed = apply_overrides(ordered, addons.overrides, stack_name)
    for stack in ordered:
        if stack.name in changed:
            stack.body = changed[stack.name]
            stack.__dict__.pop("imports", None)  # cached properties, read from the old body
            stack.__dict__.pop("exports", None)
    # After the overrides: one may add an import of an add-on stack's export to a generated stack.
    added = {name: s for s in ordered if s.layer.startswith(LAYER_PREFIX) for name in s.exports}
    for stack in ordered:
        for dependency in sorted({added[n].name for n in stack.imports if n in added} - {stack.name}):
            if dependency not in stack.depends_on:
                stack.depends_on.append(dependency)
    return ordered


def _from_pending(name: str, pending: Sequence[Any], stack: Any) -> bool:
    return any(name in other.exports for other in pending if other is not stack)


# --- template data ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A deep copy of YAML data as plain dicts, lists and scalars (the template is shared, never changed)."""
    return copy.deepcopy(value)


def _resolve_imports(node: Any, names: Mapping[str, str]) -> Any:
    """``Fn::ImportValue: !Sub "${Project}-${Environment}-network-VpcId"`` becomes the literal export
    name when its variables are only those (``Fn::ImportValue`` takes ``Fn::Sub``; "Fn::ImportValue",
    CloudFormation Template Reference)."""
    if isinstance(node, dict):
        if set(node) == {"Fn::ImportValue"} and isinstance(node["Fn::ImportValue"], dict):
            inner = node["Fn::ImportValue"]
            text = inner.get("Fn::Sub") if set(inner) == {"Fn::Sub"} else None
            if isinstance(text, str) and set(_NAME_VARIABLES.findall(text)) <= set(names):
                return {"Fn::ImportValue": _NAME_VARIABLES.sub(lambda m: names[m.group(1)], text)}
        return {key: _resolve_imports(value, names) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve_imports(item, names) for item in node]
    return node


def _dress(resources: dict[str, Any], added: Iterable[str], target: Target) -> None:
    """Give each added resource the environment's tags (where its type takes tags, merged with its
    own) and each added IAM role the permissions boundary."""
    for logical_id in added:
        resource = resources[logical_id]
        properties = resource.setdefault("Properties", {})
        if resource["Type"] == "AWS::IAM::Role" and target.boundary is not None:
            properties.setdefault("PermissionsBoundary", copy.deepcopy(target.boundary))
        prop, shape = _tag_property(target.region, resource["Type"])
        own = properties.get(prop) if prop else None
        if prop is None:
            pass
        elif shape == "object":
            if own is None or isinstance(own, dict):
                properties[prop] = {**target.tags, **(own or {})}
        elif own is None or isinstance(own, list):
            keys = {t.get("Key") for t in own or [] if isinstance(t, dict)}
            standard = [{"Key": k, "Value": v} for k, v in target.tags.items() if k not in keys]
            properties[prop] = standard + list(own or [])
        if not properties:
            del resource["Properties"]


def _tag_property(region: str, type_: str) -> tuple[str | None, str]:
    """The property a type carries its tags in and its shape (``array`` of Key/Value or ``object``),
    from its provider schema's ``tagging`` (``(None, "")``: not taggable, or a type cfn-lint does not know)."""
    from infra_templates.catalog import resource_schema  # noqa: PLC0415 - read only for add-ons

    try:
        schema = resource_schema(region, type_)
    except KeyError:
        return None, ""
    tagging = schema.get("tagging", {})
    if not tagging.get("taggable", False) or not tagging.get("tagProperty", "").startswith("/properties/"):
        return None, ""
    name = tagging["tagProperty"].removeprefix("/properties/")
    spec = schema.get("properties", {}).get(name, {})
    if "$ref" in spec:
        spec = schema.get("definitions", {}).get(spec["$ref"].rsplit("/", 1)[-1], {})
    shape = spec.get("type", "array")
    return name, shape if shape in ("array", "object") else "array"
