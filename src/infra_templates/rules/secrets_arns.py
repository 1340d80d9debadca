"""Secrets Manager references: complete ARNs, and the execution role's grant matching what ECS reads.

A secret's ARN ends in its name, a hyphen and 6 random characters. ECS takes "the full ARN of the
Secrets Manager secret" in ``Secrets[].ValueFrom`` (ECS API, Secret), and Secrets Manager asks
for the complete ARN rather than a partial one ("Finding a secret from a partial ARN"); IAM compares
a statement's ``Resource`` with the secret's complete ARN, so a name without ``-??????`` matches no
secret at all.

Values are compared as text in which every intrinsic function (``Ref``, ``Fn::GetAtt``,
``Fn::ImportValue``, a ``Fn::Sub`` variable) stands as one opaque token: two references to the same
thing compare equal, and a token is never taken for a partial name (its value is unknown here).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch


def _intrinsics() -> Any:
    """``_intrinsics.py`` beside this file, loaded by path (this module is loaded standalone)."""
    path = Path(__file__).with_name("_intrinsics.py")
    spec = importlib.util.spec_from_file_location("infra_templates_rules_intrinsics", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_INTRINSICS = _intrinsics()
TOKEN, canonical, _token = _INTRINSICS.TOKEN, _INTRINSICS.canonical, _INTRINSICS.opaque

SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")  # the 6 random characters Secrets Manager appends
PSEUDO = ("${AWS::Partition}", "${AWS::Region}", "${AWS::AccountId}", "${AWS::URLSuffix}")
# What a Ref/GetAtt returns that is a secret's complete ARN.
COMPLETE_ARN_ATTRIBUTES = {("AWS::RDS::DBCluster", "MasterUserSecret.SecretArn")}
SECRET_TYPES = {"AWS::SecretsManager::Secret"}


def _split_fields(text: str) -> list[str]:
    """``text`` split at colons outside ``${...}`` tokens."""
    tokens: list[str] = []

    def mask(match: re.Match[str]) -> str:
        tokens.append(match.group(0))
        return "\x00%d\x00" % (len(tokens) - 1)

    masked = TOKEN.sub(mask, text)
    return [re.sub(r"\x00(\d+)\x00", lambda m: tokens[int(m.group(1))], part) for part in masked.split(":")]


def secret_arn_of(text: str) -> str | None:
    """The secret an ECS ``ValueFrom`` names: ``arn:...:secret:NAME`` without the JSON key, stage and
    version ECS appends (``arn:...:secret:NAME:json-key:version-stage:version-id``), or the leading
    token of ``${SecretArn}:json-key::``. None when ``text`` names no Secrets Manager secret."""
    fields = _split_fields(text)
    if len(fields) >= 7 and fields[0] == "arn" and fields[2] == "secretsmanager" and fields[5] == "secret":
        return ":".join(fields[:7])
    if TOKEN.fullmatch(fields[0]) and fields[0] not in PSEUDO and len(fields) == 4:
        return fields[0]  # ${SecretArn}:json-key:version-stage:version-id
    return None


def is_partial(secret_arn: str) -> bool:
    """A textual secret ARN whose name lacks the 6-character suffix (and holds no token or wildcard)."""
    fields = _split_fields(secret_arn)
    if len(fields) != 7:
        return False
    name = fields[6]
    return not (TOKEN.search(name) or "*" in name or "?" in name or SUFFIX.search(name))


def resource_matches(pattern: str, arn: str) -> bool:
    """IAM's ``*`` and ``?`` wildcards, tokens compared as text."""
    if pattern == "*":
        return True
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn, flags=re.DOTALL) is not None


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _grants(statement: Any, action: str) -> bool:
    if not isinstance(statement, dict) or statement.get("Effect") != "Allow" or "Action" not in statement:
        return False
    return any(
        isinstance(a, str) and resource_matches(a.lower(), action.lower()) for a in _listify(statement["Action"])
    )


def role_statements(cfn: Any, role: str) -> tuple[list[Any], bool]:
    """The statements of ``role``'s inline policies and of the policies attached to it in the
    template; and whether the role may hold more (managed policies) that the template does not show."""
    resources = cfn.template.get("Resources", {})
    body = resources.get(role, {})
    properties = body.get("Properties", {})
    statements: list[Any] = []
    for policy in _listify(properties.get("Policies", [])):
        if isinstance(policy, dict):
            statements.extend(_listify(policy.get("PolicyDocument", {}).get("Statement", [])))
    for resource in resources.values():
        if not isinstance(resource, dict):
            continue
        kind, props = resource.get("Type"), resource.get("Properties", {})
        attached = kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and {"Ref": role} in _listify(
            props.get("Roles", [])
        )
        attached = attached or (kind == "AWS::IAM::RolePolicy" and props.get("RoleName") == {"Ref": role})
        if attached:
            statements.extend(_listify(props.get("PolicyDocument", {}).get("Statement", [])))
    return statements, bool(properties.get("ManagedPolicyArns"))


def complete_by_construction(cfn: Any, value: Any) -> bool:
    """A Ref to a secret or a GetAtt that returns a secret's complete ARN."""
    resources = cfn.template.get("Resources", {})
    if isinstance(value, dict) and "Ref" in value:
        return resources.get(value["Ref"], {}).get("Type") in SECRET_TYPES
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        name, attribute = target.split(".", 1) if isinstance(target, str) else target
        return (resources.get(name, {}).get("Type"), attribute) in COMPLETE_ARN_ATTRIBUTES
    return False


class EcsSecretFromCompleteArnTheRoleGrants(CloudFormationLintRule):
    """E9001: every Secrets Manager ``ValueFrom`` of a task definition is a complete ARN, matched by
    a ``secretsmanager:GetSecretValue`` Resource of the task's execution role."""

    id = "E9001"
    shortdesc = "ECS secrets: a complete secret ARN the execution role grants"
    description = (
        "A Secrets Manager reference in a task definition's Secrets[].ValueFrom must be the full ARN "
        "of the secret (name plus the 6-character suffix), and the task execution role must allow "
        "secretsmanager:GetSecretValue on it; otherwise the task stops at start with "
        "ResourceInitializationError. Sources: ECS API reference, Secret (valueFrom: 'the full ARN "
        "of the Secrets Manager secret'); ECS Developer Guide, 'Pass Secrets Manager secrets through "
        "Amazon ECS environment variables' (required IAM permissions)."
    )
    source_url = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-envvar-secrets-manager.html"
    tags: ClassVar[list[str]] = ["resources", "ecs", "secretsmanager", "iam"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches: list[RuleMatch] = []
        for logical, resource in cfn.get_resources("AWS::ECS::TaskDefinition").items():
            properties = resource.get("Properties", {})
            statements, hidden = self._execution_role(cfn, properties.get("ExecutionRoleArn"))
            granted = [
                r for s in statements or [] if _grants(s, "secretsmanager:GetSecretValue") for r in _resources(s)
            ]
            for path, value in _value_froms(properties):
                full_path = ["Resources", logical, "Properties", *path]
                if complete_by_construction(cfn, value):
                    arn: str | None = canonical(value)
                else:
                    text = canonical(value)
                    arn = secret_arn_of(text) if text is not None else None
                    if arn is None:
                        continue
                    if is_partial(arn):
                        matches.append(
                            RuleMatch(
                                full_path,
                                f"ValueFrom names secret {arn!r} by a partial ARN (no 6-character suffix); "
                                "ECS takes the full ARN of a Secrets Manager secret",
                            )
                        )
                if statements is None or hidden or arn is None:
                    continue
                if not any(resource_matches(pattern, arn) for pattern in granted):
                    matches.append(
                        RuleMatch(
                            full_path,
                            f"ValueFrom secret {arn!r} matches no Resource of the execution role's "
                            f"secretsmanager:GetSecretValue statements ({sorted(granted) or 'none'})",
                        )
                    )
        return matches

    @staticmethod
    def _execution_role(cfn: Any, arn: Any) -> tuple[list[Any] | None, bool]:
        """The execution role's statements, when the role is in this template (else None)."""
        if not isinstance(arn, dict) or "Fn::GetAtt" not in arn:
            return None, False
        target = arn["Fn::GetAtt"]
        name = target.split(".", 1)[0] if isinstance(target, str) else target[0]
        if cfn.template.get("Resources", {}).get(name, {}).get("Type") != "AWS::IAM::Role":
            return None, False
        return role_statements(cfn, name)


def _resources(statement: dict[str, Any]) -> Iterator[str]:
    for resource in _listify(statement.get("Resource", [])):
        text = canonical(resource)
        if text is not None:
            yield text


def _value_froms(properties: dict[str, Any]) -> Iterator[tuple[list[Any], Any]]:
    for c, container in enumerate(_listify(properties.get("ContainerDefinitions", []))):
        if not isinstance(container, dict):
            continue
        for s, secret in enumerate(_listify(container.get("Secrets", []))):
            if isinstance(secret, dict) and "ValueFrom" in secret:
                yield ["ContainerDefinitions", c, "Secrets", s, "ValueFrom"], secret["ValueFrom"]
        options = container.get("LogConfiguration", {}).get("SecretOptions", [])
        for s, secret in enumerate(_listify(options)):
            if isinstance(secret, dict) and "ValueFrom" in secret:
                yield (
                    ["ContainerDefinitions", c, "LogConfiguration", "SecretOptions", s, "ValueFrom"],
                    secret["ValueFrom"],
                )


class SecretArnsComplete(CloudFormationLintRule):
    """E9002: a secret ARN written as text is complete: in an output (a consumer uses it as the
    secret's ARN) it carries the 6-character suffix; in an IAM Resource it carries the suffix or a
    wildcard for it (``-??????``), since IAM compares the complete ARN."""

    id = "E9002"
    shortdesc = "Secret ARNs in outputs and IAM resources are complete"
    description = (
        "A Secrets Manager ARN written without the 6 random characters Secrets Manager appends to the "
        "name is partial: as an output, what consumes it (ECS ValueFrom, an IAM policy) gets a partial "
        "ARN; as an IAM Resource it matches no secret (use NAME-?????? or the complete ARN). Source: "
        "Secrets Manager User Guide, 'Finding a secret from a partial ARN' and 'Permissions policy "
        "examples' (the -?????? wildcard)."
    )
    source_url = "https://docs.aws.amazon.com/secretsmanager/latest/userguide/troubleshoot.html#ARN_secretnamehyphen"
    tags: ClassVar[list[str]] = ["outputs", "iam", "secretsmanager"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches: list[RuleMatch] = []
        for name, output in cfn.template.get("Outputs", {}).items():
            text = canonical(output.get("Value")) if isinstance(output, dict) else None
            arn = secret_arn_of(text) if text is not None else None
            if arn is not None and _split_fields(arn)[0] == "arn" and is_partial(arn):
                matches.append(
                    RuleMatch(
                        ["Outputs", name, "Value"],
                        f"output gives secret ARN {arn!r} without its 6-character suffix: a partial ARN",
                    )
                )
        for path, resource in _iam_resources(cfn.template.get("Resources", {})):
            text = canonical(resource)
            arn = secret_arn_of(text) if text is not None else None
            if arn is not None and _split_fields(arn)[0] == "arn" and is_partial(arn):
                matches.append(
                    RuleMatch(
                        path,
                        f"IAM Resource {arn!r} names a secret without its suffix and matches no secret: "
                        "write NAME-?????? or the complete ARN",
                    )
                )
        return matches


IAM_DOCUMENTS = {
    "AWS::IAM::Role": "Policies",
    "AWS::IAM::Policy": "PolicyDocument",
    "AWS::IAM::ManagedPolicy": "PolicyDocument",
    "AWS::IAM::RolePolicy": "PolicyDocument",
}


def _iam_resources(resources: dict[str, Any]) -> Iterator[tuple[list[Any], Any]]:
    for logical, resource in resources.items():
        if not isinstance(resource, dict) or resource.get("Type") not in IAM_DOCUMENTS:
            continue
        properties = resource.get("Properties", {})
        documents: list[tuple[list[Any], Any]] = []
        if resource["Type"] == "AWS::IAM::Role":
            for p, policy in enumerate(_listify(properties.get("Policies", []))):
                if isinstance(policy, dict):
                    documents.append((["Policies", p, "PolicyDocument"], policy.get("PolicyDocument", {})))
        else:
            documents.append((["PolicyDocument"], properties.get("PolicyDocument", {})))
        for prefix, document in documents:
            if not isinstance(document, dict):
                continue
            for s, statement in enumerate(_listify(document.get("Statement", []))):
                if not isinstance(statement, dict):
                    continue
                for r, value in enumerate(_listify(statement.get("Resource", []))):
                    path = ["Resources", logical, "Properties", *prefix, "Statement", s, "Resource", r]
                    yield path, value


# A dynamic reference to a secret: {{resolve:secretsmanager:secret-id:...}} (AWS Secrets Manager User
# Guide, "Get an AWS Secrets Manager secret in an AWS CloudFormation resource").
DYNAMIC_SECRET = re.compile(r"\{\{resolve:secretsmanager:([^:}]+)")


class SecretNameWithoutArnSuffixShape(CloudFormationLintRule):
    """E9013: a secret's name, given to ``AWS::SecretsManager::Secret`` or read by name in a dynamic
    reference, does not end in a hyphen and six characters."""

    id = "E9013"
    shortdesc = "Secret names do not end in a hyphen and six characters"
    description = (
        "Secrets Manager appends a hyphen and 6 random characters to a secret's name in its ARN, and "
        "takes an identifier whose name ends in a hyphen and six characters for a complete ARN: "
        "'Do not end your secret name with a hyphen followed by six characters. If you do so, you risk "
        "confusion and unexpected results when searching for a secret by partial ARN'. A dynamic "
        "reference by such a name may not resolve. Source: AWS Secrets Manager API Reference, "
        "'CreateSecret' (Name); AWS Secrets Manager User Guide, 'Troubleshoot AWS Secrets Manager'."
    )
    source_url = "https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html"
    tags: ClassVar[list[str]] = ["resources", "secretsmanager"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches: list[RuleMatch] = []
        for logical, resource in cfn.template.get("Resources", {}).items():
            if not isinstance(resource, dict):
                continue
            name = resource.get("Properties", {}).get("Name") if resource.get("Type") in SECRET_TYPES else None
            if isinstance(name, str) and SUFFIX.search(name):
                matches.append(
                    RuleMatch(
                        ["Resources", logical, "Properties", "Name"],
                        f"secret name {name!r} ends in a hyphen and six characters, the shape of an ARN's "
                        "random suffix: Secrets Manager may take it for a complete ARN",
                    )
                )
            for path, text in _strings_in(resource, ["Resources", logical]):
                for found in DYNAMIC_SECRET.findall(text):
                    if not found.startswith("arn") and SUFFIX.search(found):
                        matches.append(
                            RuleMatch(
                                path,
                                f"dynamic reference names secret {found!r}, which ends in a hyphen and six "
                                "characters: Secrets Manager may take it for a complete ARN and not find it",
                            )
                        )
        return matches


def _strings_in(node: Any, path: list[Any]) -> Iterator[tuple[list[Any], str]]:
    """Every string below ``node``, with its path."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings_in(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings_in(value, [*path, index])
