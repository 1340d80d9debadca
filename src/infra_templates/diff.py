"""Change preview: what deploying freshly built templates would do to the stacks of an output folder.

``diff_stacks(old, new)`` compares two sets of stacks (usually: the templates ``deploy.sh`` recorded
in ``deployed/<env>/`` as it deployed them, and the ones just built from the settings) and says, per
stack, which resources CloudFormation would add, remove, change or replace, and which outputs change.
The baseline is never ``output/``: every ``make`` target rewrites it, so a diff against it after any
target is empty.

Replacement is read from CloudFormation's own resource provider schemas, as cfn-lint ships them: a
change to any of a type's ``createOnlyProperties`` replaces the resource; so does a new Type under
the same logical ID, and a create-only property that refers (Ref, GetAtt, Sub) to a resource that
is replaced, since its physical ID changes. Deleting or replacing a resource of a stateful type
(see :mod:`infra_templates.stateful`) is reported on a line of its own starting with ``WARNING:``.

It knows no layers: stacks are matched by stack name, resources by logical ID.

A conditional create-only property (the schema's ``conditionalCreateOnlyProperties``) replaces the
resource when the value alone decides (:data:`DECIDED_CONDITIONAL`, e.g. a cluster's ``Engine``);
the others are reported as "may replace". Each stack ends with a verdict (:attr:`StackDiff.verdict`):
``in place``, ``replaces X (stateful)``, or ``cannot deploy: ...`` (an export other stacks import
changed or removed, a change UpdateService refuses on a CODE_DEPLOY service, a replacement of a
custom-named resource). Values are shown whole where cutting could hide a change (lists, objects,
IAM policies).

Limits: values only known at deploy time (an ``Fn::ImportValue`` whose export changed) are not
predicted; a change set (``deploy.sh --review``) is the final word.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from infra_templates.catalog import resource_schema
from infra_templates.pipeline import find_imports
from infra_templates.stateful import KEEPING_POLICIES, STATEFUL_TYPES

Action = Literal["add", "remove", "modify"]
SIGN: dict[Action, str] = {"add": "+", "remove": "-", "modify": "~"}
MAX_DETAILS = 8  # changed paths shown per resource; the rest are counted
MAX_VALUE = 60  # characters of a value shown in a changed path
LABELS = {"Outputs": "output ", "Parameters": "parameter "}


class DiffError(Exception):
    """The folder to compare with cannot be read (a manifest that names a missing file...)."""


@dataclass(frozen=True)
class StackTemplate:
    """A stack as the diff sees it: its name, its region and its template as data."""

    name: str
    region: str
    body: Mapping[str, Any]


@dataclass(frozen=True)
class Change:
    """One resource, output, parameter or other template section that differs."""

    section: str  # "Resources", "Outputs", "Parameters" or a section name ("Description", "Mappings", ...)
    key: str  # logical ID, output or parameter name; the section name for a whole section
    action: Action
    type: str = ""  # resource type (the new one when it changed)
    details: tuple[str, ...] = ()  # what changed: "Properties.CidrBlock: '10.0.0.0/16' -> '10.1.0.0/16'"
    replacement: tuple[str, ...] = ()  # why CloudFormation would replace the resource; empty: in place
    maybe: tuple[str, ...] = ()  # conditional create-only properties that change: may replace it
    named: str = ""  # the custom name it keeps, if replaced: CloudFormation cannot replace it


@dataclass(frozen=True)
class StackDiff:
    name: str
    region: str
    action: Action
    changes: tuple[Change, ...] = ()
    warnings: tuple[str, ...] = ()
    resource_count: int = 0
    refusals: tuple[str, ...] = ()  # changes AWS refuses: the stack update would fail and roll back

    @property
    def changed(self) -> bool:
        return self.action != "modify" or bool(self.changes)

    @property
    def cannot_deploy(self) -> bool:
        """Whether AWS would refuse the update (a ``cannot deploy`` verdict: a ``REFUSED:`` change, an
        export in use changed or removed, a custom-named resource replaced): ``diff`` exits 1."""
        return self.verdict.startswith("cannot deploy")

    @property
    def blocking(self) -> tuple[str, ...]:
        """Why ``deploy.sh`` must not deploy this stack without a deliberate ``ALLOW_REPLACE``: a
        ``cannot deploy`` verdict (AWS would refuse the update and roll it back) and every stateful
        resource the update replaces or deletes (its data goes unless its policy keeps it). Empty for
        a new stack and a removed one (``deploy.sh`` deletes no stack)."""
        if self.action != "modify":
            return ()
        found = [self.verdict] if self.cannot_deploy else []
        found += [w.removeprefix("WARNING: ") for w in self.warnings if " STATEFUL " in w]
        return tuple(found)

    @property
    def verdict(self) -> str:
        """One line: ``in place``, ``replaces X (stateful)``, ``cannot deploy: ...``, or what a new or
        removed stack does."""
        if self.action == "add":
            return f"creates the stack ({_resource_count(self.resource_count)})"
        if self.action == "remove":
            return f"deletes the stack ({_resource_count(self.resource_count)}), unless you keep it"
        blocked = [r.removeprefix("REFUSED: ").split(";")[0] for r in self.refusals]
        blocked += [d for c in self.changes for d in c.details if "CloudFormation refuses to" in d]
        blocked += [
            f"{c.key} ({c.type}) would be replaced but keeps its custom name {c.named} (CloudFormation cannot "
            'replace a custom-named resource: CloudFormation Template Reference, "CloudFormation resource '
            'custom naming"); undo the change that replaces it, or give it a new name'
            for c in self.changes
            if c.replacement and c.named
        ]
        if blocked:
            return "cannot deploy: " + "; ".join(blocked)
        replaced = [
            f"{c.key}{' (stateful)' if c.type in STATEFUL_TYPES else ''}"
            for c in self.changes
            if c.section == "Resources" and c.replacement
        ]
        maybe = [f"{c.key} ({', '.join(c.maybe)})" for c in self.changes if c.maybe and not c.replacement]
        text = ("replaces " + ", ".join(replaced)) if replaced else "in place" if self.changes else "no changes"
        return text + (f"; may replace {', '.join(maybe)}: the change set decides" if maybe else "")


@dataclass
class _Resources:
    """Resource changes of one stack while they are being worked out."""

    changes: dict[str, Change] = field(default_factory=dict)
    replaced: dict[str, list[str]] = field(default_factory=dict)


# --- reading an output folder -----------------------------------------------------------------


def read_output(folder: Path) -> list[StackTemplate] | None:
    """The stacks of a generated folder (its manifest.json and the JSON templates it names), in
    manifest order; None when the folder holds no manifest (an environment never built there).

    A stack whose template lies in another folder (a project-wide stack an environment's manifest
    lists first) is left to that folder, so each stack is compared once.
    """
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        listed = [(stack["name"], stack["region"], folder / stack["templates"]["json"]) for stack in manifest["stacks"]]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise DiffError(f"{manifest_path}: not a generated manifest ({type(error).__name__}: {error})") from None
    stacks = []
    for name, region, path in listed:
        if path.resolve().parent != folder.resolve():
            continue
        if not path.is_file():
            raise DiffError(f"{manifest_path} names {path.name}, which is not there")
        stacks.append(StackTemplate(name, region, _template(path)))
    return stacks


def _template(path: Path) -> Any:
    """A template's JSON; DiffError naming the file where it is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DiffError(f"{path}: not JSON ({error})") from None


def read_deployed(folder: Path) -> list[StackTemplate] | None:
    """The stacks ``deploy.sh`` recorded as deployed from one output folder, each in
    ``deployed/<folder>/<region>/<stack>.json`` (the JSON twin of the template it deployed, copied once
    the stack's update succeeded), sorted by region and name; None when nothing was recorded."""
    paths = sorted(folder.glob("*/*.json")) if folder.is_dir() else []
    if not paths:
        return None
    return [StackTemplate(p.stem, p.parent.name, _template(p)) for p in paths]


def read_baseline(folder: Path) -> list[StackTemplate] | None:
    """What to compare a build with: a generated output folder (a ``manifest.json``: a copy of an
    earlier ``output/<env>/``, ``tests/golden/<env>/``) or a folder ``deploy.sh`` recorded
    (:func:`read_deployed`); None when it holds neither."""
    if (folder / "manifest.json").is_file():
        return read_output(folder)
    return read_deployed(folder)


def baseline_folders(root: Path) -> list[str]:
    """The folder names under ``root`` that hold a baseline of either kind."""
    return sorted(p.name for p in root.glob("*/") if (p / "manifest.json").is_file() or any(p.glob("*/*.json")))


def blocked_stacks(old: Sequence[StackTemplate], new: Sequence[StackTemplate]) -> dict[str, str]:
    """``{stack: why}`` for each stack of ``new`` whose update :attr:`StackDiff.blocking` stops."""
    return {d.name: "; ".join(d.blocking) for d in diff_stacks(old, new) if d.blocking}


# --- comparing --------------------------------------------------------------------------------


def diff_stacks(old: Sequence[StackTemplate], new: Sequence[StackTemplate]) -> list[StackDiff]:
    """Per stack (new ones in their order, then removed ones): what deploying ``new`` over ``old`` does."""
    before = {s.name: s for s in old}
    after = {s.name: s for s in new}
    importers = _importers(old)
    diffs: list[StackDiff] = []
    for stack in new:
        if stack.name not in before:
            diffs.append(StackDiff(stack.name, stack.region, "add", resource_count=len(_resources(stack.body))))
        else:
            diffs.append(_diff_stack(before[stack.name], stack, importers))
    for stack in old:
        if stack.name not in after:
            warnings = tuple(
                _warn("DELETES", stack.name, logical_id, resource, "its stack is no longer generated")
                for logical_id, resource in _resources(stack.body).items()
                if resource.get("Type") in STATEFUL_TYPES
            )
            diffs.append(StackDiff(stack.name, stack.region, "remove", (), warnings, len(_resources(stack.body))))
    return diffs


def _diff_stack(old: StackTemplate, new: StackTemplate, importers: Mapping[str, list[str]]) -> StackDiff:
    region = new.region
    old_resources, new_resources = _resources(old.body), _resources(new.body)
    work = _Resources()
    for logical_id, resource in new_resources.items():
        previous = old_resources.get(logical_id)
        if previous is None:
            work.changes[logical_id] = Change("Resources", logical_id, "add", resource.get("Type", "?"))
        elif previous != resource:
            reasons = _replacement_reasons(region, previous, resource)
            if reasons:
                work.replaced[logical_id] = reasons
            work.changes[logical_id] = Change(
                "Resources", logical_id, "modify", resource.get("Type", "?"), _details(previous, resource, "")
            )
    _cascade(region, old_resources, new_resources, work)
    for logical_id, resource in old_resources.items():
        if logical_id not in new_resources:
            work.changes[logical_id] = Change("Resources", logical_id, "remove", resource.get("Type", "?"))

    changes: list[Change] = []
    warnings: list[str] = []
    in_order = [k for k in [*new_resources, *old_resources] if k in work.changes]
    for logical_id in dict.fromkeys(in_order):
        change = work.changes[logical_id]
        why = tuple(work.replaced.get(logical_id, ()))
        maybe: tuple[str, ...] = ()
        named = ""
        if change.action == "modify" and logical_id in old_resources:
            maybe = tuple(_maybe_replaced(region, old_resources[logical_id], new_resources[logical_id]))
            if why:
                named = _custom_name(region, old_resources[logical_id], new_resources[logical_id])
        changes.append(dataclasses.replace(change, replacement=why, maybe=maybe, named=named))
        if change.action == "remove" and change.type in STATEFUL_TYPES:
            warnings.append(_warn("DELETES", new.name, logical_id, old_resources[logical_id], _gone(change, work)))
        elif why and old_resources[logical_id].get("Type") in STATEFUL_TYPES:
            warnings.append(_warn("REPLACES", new.name, logical_id, old_resources[logical_id], why[0]))
        elif change.action == "modify" and _shifted_by_a_deployment(new_resources[logical_id]):
            warnings.append(
                f"WARNING: RESETS WEIGHTS {new.name} {logical_id} ({change.type}): CloudFormation writes the "
                "template's forward weights again, whichever target group serves now (aws/aws-cdk#36649); "
                "deploy it right after a release that left traffic on the first target group, or release again"
            )
    changes.extend(_diff_outputs(old.body, new.body, importers, set(work.replaced)))
    changes.extend(_diff_named("Parameters", old.body, new.body))
    changes.extend(_diff_sections(old.body, new.body))
    refusals = tuple(_code_deploy_refusals(new.name, old_resources, new_resources, set(work.replaced)))
    return StackDiff(new.name, region, "modify", tuple(changes), tuple(warnings), len(new_resources), refusals)


# UpdateService on a service with the blue/green (CODE_DEPLOY) deployment controller updates "only
# the desired count, deployment configuration, health check grace period, task placement constraints
# and strategies, enable ECS managed tags option, and propagate tags"; the network configuration,
# platform version, task definition and load balancers need a CodeDeploy deployment (ECS API
# reference, UpdateService), and the capacity provider strategy is not among what it updates.
CODE_DEPLOY_FIXED = (
    "CapacityProviderStrategy",
    "LaunchType",
    "LoadBalancers",
    "NetworkConfiguration",
    "PlatformVersion",
    "TaskDefinition",
)


def _code_deploy_refusals(
    stack: str, old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]], replaced: set[str]
) -> Iterator[str]:
    """A change CloudFormation would pass to UpdateService that ECS refuses on a CODE_DEPLOY service:
    one of :data:`CODE_DEPLOY_FIXED` written differently, or referring to a resource that is replaced
    (a security group whose description changed: its new ID is a new network configuration)."""
    for logical_id, resource in new.items():
        before = old.get(logical_id, {})
        if before.get("Type") != "AWS::ECS::Service" or resource.get("Type") != "AWS::ECS::Service":
            continue
        if before.get("Properties", {}).get("DeploymentController", {}).get("Type") != "CODE_DEPLOY":
            continue
        for name in CODE_DEPLOY_FIXED:
            was, now = before.get("Properties", {}).get(name), resource.get("Properties", {}).get(name)
            hit = sorted(_references(now) & replaced)
            if was != now or hit:
                why = "changes" if was != now else f"refers to {hit[0]}, which is replaced"
                yield (
                    f"REFUSED: {stack} {logical_id} (AWS::ECS::Service, CODE_DEPLOY controller): {name} {why}; "
                    "UpdateService refuses it on a CODE_DEPLOY service (ECS API reference, UpdateService): "
                    "release it through CodeDeploy, or move the service to deployment.controller: ecs"
                )


def _shifted_by_a_deployment(resource: Mapping[str, Any]) -> bool:
    """A listener rule forwarding to two weighted target groups: a blue/green deployment (ECS or
    CodeDeploy) moves its live weights away from the template's."""
    if resource.get("Type") != "AWS::ElasticLoadBalancingV2::ListenerRule":
        return False
    for action in resource.get("Properties", {}).get("Actions", []):
        groups = action.get("ForwardConfig", {}).get("TargetGroups", []) if isinstance(action, dict) else []
        if isinstance(groups, list) and len(groups) > 1:
            return True
    return False


def _resources(body: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = body.get("Resources", {})
    return resources


def _gone(change: Change, work: _Resources) -> str:
    """Why a removed resource goes; a new logical ID of the same type reads like a rename."""
    same_type = [c.key for c in work.changes.values() if c.action == "add" and c.type == change.type]
    if same_type:
        return f"its logical ID is gone (renamed to {' or '.join(same_type)}?): a rename replaces it"
    return "its logical ID is gone"


def _warn(verb: Literal["DELETES", "REPLACES"], stack: str, logical_id: str, old: Mapping[str, Any], why: str) -> str:
    """The loud line for a stateful resource that goes; the old template's policy says what becomes of it."""
    policy_key = "DeletionPolicy" if verb == "DELETES" else "UpdateReplacePolicy"
    policy = old.get(policy_key, "Delete")
    if policy in KEEPING_POLICIES:
        fate = f"{policy_key} {policy} keeps the old one, orphaned outside the stack"
    else:
        fate = f"{policy_key} {policy}: CloudFormation deletes the old one and its data"
    return f"WARNING: {verb} STATEFUL {stack} {logical_id} ({old.get('Type')}): {why}; {fate}"


# --- replacement ------------------------------------------------------------------------------


@functools.cache
def create_only_properties(region: str, type_: str) -> tuple[str, ...]:
    """JSON pointers (``/properties/CidrBlock``) of the properties whose change replaces a resource."""
    try:
        schema = resource_schema(region, type_)
    except KeyError:  # custom resources, or a type this region does not have
        return ()
    return tuple(schema.get("createOnlyProperties", ()))


# Conditional create-only properties (the schema's conditionalCreateOnlyProperties) whose change
# replaces the resource whenever the value differs, as the CloudFormation Template Reference says
# for them: AWS::RDS::DBCluster Engine and MasterUsername ("Update requires: Replacement"). Other
# conditional ones depend on more than the value: the diff says "may replace", the change set decides.
DECIDED_CONDITIONAL = {
    ("AWS::RDS::DBCluster", "/properties/Engine"),
    ("AWS::RDS::DBCluster", "/properties/MasterUsername"),
}


@functools.cache
def conditional_create_only_properties(region: str, type_: str) -> tuple[str, ...]:
    """JSON pointers of the properties whose change may replace a resource, depending on the change."""
    try:
        schema = resource_schema(region, type_)
    except KeyError:
        return ()
    return tuple(schema.get("conditionalCreateOnlyProperties", ()))


def _replacement_reasons(region: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    if old.get("Type") != new.get("Type"):
        return [f"Type changes from {old.get('Type')} to {new.get('Type')}"]
    reasons = []
    type_ = new.get("Type", "")
    before, after = old.get("Properties", {}), new.get("Properties", {})
    for pointer in create_only_properties(region, type_):
        if _at_pointer(before, pointer) != _at_pointer(after, pointer):
            reasons.append(f"{_pointer_name(pointer)} is create-only")
    for pointer in conditional_create_only_properties(region, type_):
        if (type_, pointer) in DECIDED_CONDITIONAL and _at_pointer(before, pointer) != _at_pointer(after, pointer):
            reasons.append(f"{_pointer_name(pointer)} changes, which replaces it")
    return reasons


def _maybe_replaced(region: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Conditional create-only properties that change, where the value alone does not decide."""
    type_ = new.get("Type", "")
    before, after = old.get("Properties", {}), new.get("Properties", {})
    return [
        _pointer_name(pointer)
        for pointer in conditional_create_only_properties(region, type_)
        if (type_, pointer) not in DECIDED_CONDITIONAL and _at_pointer(before, pointer) != _at_pointer(after, pointer)
    ]


def _cascade(
    region: str, old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]], work: _Resources
) -> None:
    """A create-only property that refers to a replaced resource changes too: replace until stable."""
    settled = False
    while not settled:
        settled = True
        for logical_id, resource in new.items():
            if logical_id in work.replaced or logical_id not in old:
                continue
            for pointer in create_only_properties(region, resource.get("Type", "")):
                values = _at_pointer(resource.get("Properties", {}), pointer)
                hit = sorted(_references(values) & set(work.replaced))
                if hit:
                    work.replaced[logical_id] = [f"{_pointer_name(pointer)} refers to {hit[0]}, which is replaced"]
                    work.changes.setdefault(
                        logical_id, Change("Resources", logical_id, "modify", resource.get("Type", "?"))
                    )
                    settled = False
                    break


def _custom_name(region: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """The custom name a replaced resource keeps: its type's create-only name property (``QueueName``
    of a Queue, ``DBClusterIdentifier`` of a DBCluster, ``Name``) given the same literal before and
    after; else ``""``."""
    type_ = str(new.get("Type", ""))
    if old.get("Type") != type_:
        return ""
    kind = type_.rsplit("::", 1)[-1]
    candidates = {f"/properties/{kind}Name", f"/properties/{kind}Identifier", "/properties/Name"}
    for pointer in create_only_properties(region, type_):
        if pointer not in candidates:
            continue
        name = pointer.split("/")[-1]
        before = old.get("Properties", {}).get(name)
        if isinstance(before, str) and before == new.get("Properties", {}).get(name):
            return before
    return ""


def _pointer_name(pointer: str) -> str:
    return ".".join(pointer.split("/")[2:]).replace(".*", "[*]")


def _at_pointer(properties: Any, pointer: str) -> dict[str, Any]:
    """``{concrete path: value}`` for a create-only pointer such as ``/properties/List/*/Name``.

    An intrinsic function met on the way is taken as the value, so a change inside it counts.
    """
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[2:]]
    found: dict[str, Any] = {}

    def walk(node: Any, rest: list[str], where: str) -> None:
        if not rest or _is_intrinsic(node):
            found[where] = node
            return
        head, *tail = rest
        if head == "*" and isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, tail, f"{where}[{index}]")
        elif isinstance(node, dict) and head != "*":
            if head in node:
                walk(node[head], tail, f"{where}.{head}")
        else:  # not the shape the schema describes: compare it whole
            found[where] = node

    walk(properties, parts, "")
    return found


def _is_intrinsic(node: Any) -> bool:
    if not (isinstance(node, dict) and len(node) == 1):
        return False
    key = next(iter(node))
    return isinstance(key, str) and (key == "Ref" or key.startswith("Fn::"))


_SUB_NAME = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[^}]*)?\}")


def _references(node: Any) -> set[str]:
    """Logical IDs (and parameters) a value refers to with Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) and value else value
                if isinstance(target, str):
                    found.add(target.split(".")[0])
            elif key == "Fn::Sub":
                text, names = (value[0], value[1]) if isinstance(value, list) and len(value) == 2 else (value, {})
                if isinstance(text, str):
                    found.update(n for n in _SUB_NAME.findall(text) if n not in names)
                found.update(_references(names))
            else:
                found.update(_references(value))
    elif isinstance(node, list):
        for item in node:
            found.update(_references(item))
    return found


# --- outputs, parameters and the other sections -----------------------------------------------


def _importers(stacks: Sequence[StackTemplate]) -> dict[str, list[str]]:
    """``{export name: [stacks that import it]}`` among the stacks as they are deployed now."""
    importers: dict[str, list[str]] = {}
    for stack in stacks:
        for name in sorted(set(find_imports(stack.body))):
            importers.setdefault(name, []).append(stack.name)
    return importers


def _diff_outputs(
    old: Mapping[str, Any], new: Mapping[str, Any], importers: Mapping[str, list[str]], replaced: set[str]
) -> list[Change]:
    """Outputs added, removed or changed, including those whose text stays but whose value refers to a
    replaced resource; an export that other stacks import is flagged (CloudFormation refuses to change it)."""
    changes = _diff_named("Outputs", old, new)
    before = old.get("Outputs", {})
    listed = {c.key for c in changes}
    for key, output in new.get("Outputs", {}).items():
        hit = sorted(_references(output.get("Value")) & replaced)
        if key in before and key not in listed and hit:
            changes.append(Change("Outputs", key, "modify", "", (f"Value: refers to {hit[0]}, which is replaced",)))
    flagged = []
    for change in changes:
        export = before.get(change.key, {}).get("Export", {}).get("Name")
        users = importers.get(export, []) if isinstance(export, str) else []
        if change.action == "add" or not users:
            flagged.append(change)
            continue
        note = (
            f"export {export} is imported by {', '.join(users)}: CloudFormation refuses to "
            f"{'remove' if change.action == 'remove' else 'change'} it until they stop importing it"
        )
        flagged.append(dataclasses.replace(change, details=(*change.details, note)))
    return flagged


def _diff_named(section: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    before, after = old.get(section, {}), new.get(section, {})
    changes = [
        Change(section, key, "add")
        if key not in before
        else Change(section, key, "modify", "", _details(before[key], value, ""))
        for key, value in after.items()
        if before.get(key) != value
    ]
    changes.extend(Change(section, key, "remove") for key in before if key not in after)
    return changes


def _diff_sections(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    changes = []
    for section in [*old, *(k for k in new if k not in old)]:
        if section in ("Resources", "Outputs", "Parameters") or old.get(section) == new.get(section):
            continue
        action: Action = "add" if section not in old else "remove" if section not in new else "modify"
        details = _details(old[section], new[section], section) if action == "modify" else ()
        changes.append(Change(section, section, action, "", details))
    return changes


# --- showing what changed ---------------------------------------------------------------------

_ABSENT = object()


def _details(old: Any, new: Any, path: str) -> tuple[str, ...]:
    found = list(_differences(old, new, path))
    shown = [
        f"{where or '(value)'}: {_show(before, where)} -> {_show(after, where)}"
        for where, before, after in found[:MAX_DETAILS]
    ]
    if len(found) > MAX_DETAILS:
        shown.append(f"... and {len(found) - MAX_DETAILS} more")
    return tuple(shown)


def _differences(old: Any, new: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            yield from _differences(old.get(key, _ABSENT), new.get(key, _ABSENT), f"{path}.{key}" if path else key)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            yield from _differences(before, after, f"{path}[{index}]")
    else:
        yield path, old, new


def _show(value: Any, path: str = "") -> str:
    """A value as JSON; long plain strings cut to MAX_VALUE, never lists, objects or anything of an
    IAM policy (a removed principal must show)."""
    if value is _ABSENT:
        return "(absent)"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True) if not isinstance(value, str) else repr(value)
    if isinstance(value, (list, dict)) or "Polic" in path or len(text) <= MAX_VALUE:
        return text
    return text[: MAX_VALUE - 3] + "..."


def report(label: str, diffs: Sequence[StackDiff]) -> list[str]:
    """Readable lines for one environment: a summary, a block per changed stack, then the warnings."""
    changed = [d for d in diffs if d.changed]
    if not changed:
        return [f"{label}: no changes"]
    counts = {a: sum(1 for d in changed if d.action == a) for a in ("add", "remove", "modify")}
    lines = [
        f"{label}: {counts['modify']} stack(s) changed, {counts['add']} added, {counts['remove']} removed",
    ]
    for stack in changed:
        if stack.action == "add":
            lines.append(f"+ stack {stack.name} ({stack.region}): new, {_resource_count(stack.resource_count)}")
            continue
        if stack.action == "remove":
            lines.append(
                f"- stack {stack.name} ({stack.region}): no longer generated; it holds "
                f"{_resource_count(stack.resource_count)}, which deleting the stack deletes"
            )
            continue
        resources = [c for c in stack.changes if c.section == "Resources"]
        tally = ", ".join(
            f"{sum(1 for c in resources if c.action == a)} {word}"
            for a, word in (("add", "added"), ("remove", "removed"), ("modify", "changed"))
        )
        replaced = sum(1 for c in resources if c.replacement)
        lines.append(
            f"~ stack {stack.name} ({stack.region}): resources {tally}"
            + (f" ({replaced} replaced)" if replaced else "")
        )
        for change in stack.changes:
            what = LABELS.get(change.section, "") + change.key
            if change.section == "Resources":
                what = f"{change.key} ({change.type})"
            replaced_note = f"  REPLACED: {'; '.join(change.replacement)}" if change.replacement else ""
            lines.append(f"    {SIGN[change.action]} {what}{replaced_note}")
            lines.extend(f"        {detail}" for detail in change.details)
    lines.extend(warning for stack in changed for warning in stack.warnings)
    lines.extend(refusal for stack in changed for refusal in stack.refusals)
    lines.append("Verdict, per stack:")
    lines.extend(f"  {stack.name}: {stack.verdict}" for stack in changed)
    return lines


def _resource_count(count: int) -> str:
    """``1 resource``, ``3 resources``."""
    return f"{count} resource{'' if count == 1 else 's'}"
