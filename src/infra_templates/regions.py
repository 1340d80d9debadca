"""Regions where a stack's resources act, beyond the stack's own region: where a service, on the
caller's behalf, creates or changes something in another region (a secret's replica, an ECR
replica, a DynamoDB global table's replica, an Aurora cluster's cross-region source).

The role CloudFormation deploys with must be allowed there too: Secrets Manager creates a replica
with the caller's permissions in the replica region ("Replicate an AWS Secrets Manager secret to
other AWS Regions": the caller needs ``secretsmanager:ReplicateSecretToRegions`` and the replica
key's KMS permissions; https://docs.aws.amazon.com/secretsmanager/latest/userguide/create-manage-multi-region-secrets.html),
so a role fenced with ``aws:RequestedRegion`` to the stacks' regions makes the replica fail
silently (the secret's ``ReplicationStatus`` says so, the stack does not).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# Resource type -> the property paths ("*": every item of a list) that hold a region it acts in.
ACTING_REGION_PROPERTIES: dict[str, tuple[tuple[str, ...], ...]] = {
    "AWS::SecretsManager::Secret": (("ReplicaRegions", "*", "Region"),),
    "AWS::ECR::ReplicationConfiguration": (("ReplicationConfiguration", "Rules", "*", "Destinations", "*", "Region"),),
    "AWS::DynamoDB::GlobalTable": (("Replicas", "*", "Region"),),
    "AWS::RDS::DBCluster": (("SourceRegion",),),
    "AWS::RDS::DBInstance": (("SourceRegion",),),
}
REQUESTED_REGION = "aws:RequestedRegion"


def acting_regions(body: dict[str, Any]) -> set[str]:
    """The literal regions (``eu-central-1``) the resources of a template act in, its own excluded
    only by the caller (a template does not know its region)."""
    found: set[str] = set()
    for resource in body.get("Resources", {}).values():
        for path in ACTING_REGION_PROPERTIES.get(resource.get("Type", ""), ()):
            found.update(v for v in _walk(resource.get("Properties", {}), path) if isinstance(v, str))
    return found


def _walk(node: Any, path: tuple[str, ...]) -> Iterator[Any]:
    if not path:
        yield node
        return
    head, rest = path[0], path[1:]
    if head == "*":
        for item in node if isinstance(node, list) else []:
            yield from _walk(item, rest)
    elif isinstance(node, dict) and head in node:
        yield from _walk(node[head], rest)


def allowed_regions(body: dict[str, Any]) -> set[str] | None:
    """The regions a deployer template's execution role may act in: the union of the
    ``aws:RequestedRegion`` values its statements are fenced with (None when nothing fences it)."""
    regions: set[str] = set()
    fenced = False
    for node in _conditions(body):
        value = node.get(REQUESTED_REGION)
        if value is not None:
            fenced = True
            regions.update([value] if isinstance(value, str) else value)
    return regions if fenced else None


def _conditions(node: Any) -> Iterator[dict[str, Any]]:
    """The StringEquals conditions of ``node``'s statements, and the StringNotEquals of its Deny
    statements (a Deny of every request outside some regions fences them just as well)."""
    if isinstance(node, dict):
        fence = node.get("Condition", {}).get("StringNotEquals") if node.get("Effect") == "Deny" else None
        if isinstance(fence, dict):
            yield fence
        for key, value in node.items():
            if key == "StringEquals" and isinstance(value, dict):
                yield value
            else:
                yield from _conditions(value)
    elif isinstance(node, list):
        for item in node:
            yield from _conditions(item)


def check_regions(manifests: Iterable[tuple[Path, dict[str, Any]]], layer: str = "deployer") -> list[str]:
    """Each environment folder's deployer role is allowed in every region a stack of that folder
    (its own, not another folder's) acts in. Problems as text, one per stack and missing region."""
    problems: list[str] = []
    for path, manifest in manifests:
        own = [s for s in manifest["stacks"] if not s["templates"]["json"].startswith("../")]
        deployer = next((s for s in own if s.get("layer") == layer), None)
        if deployer is None:
            continue
        allowed = allowed_regions(_body(path, deployer))
        if allowed is None:
            continue  # not fenced by region: nothing to miss
        for stack in own:
            missing = sorted(acting_regions(_body(path, stack)) - allowed - {stack["region"]})
            if missing:
                problems.append(
                    f"{stack['name']} acts in {', '.join(missing)} (a replica, a replication destination), but "
                    f"{deployer['name']} allows aws:RequestedRegion {sorted(allowed)} only"
                )
    return problems


def _body(folder_manifest: Path, stack: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder_manifest.parent / stack["templates"]["json"]).read_text("utf-8"))
    return data
