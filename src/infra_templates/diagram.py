"""Architecture diagram of one output folder, drawn from the generated templates themselves.

The input is what users upload: ``manifest.json`` and each stack's JSON template. Nothing here
knows this platform's layers; it reads resource types:

- regions and accounts are clusters (the environment's, us-east-1 for a stack deployed there, the
  registry's account and region);
- the VPC is a cluster with one cluster per subnet tier (the subnet's ``Tier`` tag) holding one
  node per subnet (tier x zone); a resource whose subnets (directly, or through a subnet group or an
  imported list) lie in one tier is drawn inside that tier;
- every resource is a node unless its type is plumbing (IAM, rules, routes, associations, policies:
  ``PLUMBING``); a stack with more than ``COLLAPSE_OVER`` resources of one type gets one node
  ``N x type``, so a layer added later (alarms, pipelines) appears without code here;
- solid arrows are what the security groups allow: an ingress rule naming the peer (a group, a
  CIDR, a prefix list) and, from a group, an egress rule that lets the traffic leave (a group
  without ``SecurityGroupEgress`` keeps AWS's allow-all egress); both are needed for an arrow;
- grey arrows are references between drawn resources (dotted: ``Ref``/``Fn::GetAtt`` in a stack;
  dashed: ``Fn::ImportValue`` between stacks, or a parameter filled from another stack's output),
  followed through plumbing such as a target group; blue: a CDN origin given as a host name.

One sheet per folder, for people: an environment's sheet draws only that environment's own stacks
(the project's stacks have their own sheet, ``output/project/architecture.*``; a DR partner's are on
its own). Availability zones are columns (one cluster per zone holding its subnets) and subnet
tiers rows (public, private, data: the resources of a tier share its row), with a legend. By default
(``detail="traffic"``) only the traffic paths are drawn: the security-group arrows, the CDN's
origins and what they connect, plus the subnets; ``detail="all"`` draws every resource and every
reference. The drawing is scaled to fit a page width (``PAGE_INCHES`` at 96 dpi: at most 2,000 px).

``dot_source`` is deterministic (everything sorted); ``render`` runs Graphviz's ``dot`` and strips
the version comment from the SVG so the file does not change with the Graphviz release.
"""

from __future__ import annotations

import html
import ipaddress
import itertools
import json
import posixpath
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphviz  # type: ignore[import-untyped]  # python-graphviz ships no type hints

from infra_templates.layer import SOURCES_METADATA

FILES = ("architecture.dot", "architecture.svg", "architecture.png")
DETAILS = ("traffic", "all")  # what a sheet draws: the traffic paths (the default), or everything
PAGE_INCHES = "20.8,28"  # the largest drawing, width and height (dot scales a larger one down): 2,000 px wide
TIER_ORDER = ("public", "private", "data")  # rows from the top; any other tier below them, by name
COLLAPSE_OVER = 3
ANY = "0.0.0.0/0"

# Types drawn as a node nowhere: they wire other resources together, or are drawn as clusters.
PLUMBING = {
    "AWS::EC2::VPC",
    "AWS::EC2::Subnet",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::EC2::SecurityGroupEgress",
    "AWS::EC2::RouteTable",
    "AWS::EC2::Route",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::VPCGatewayAttachment",
    "AWS::EC2::EIP",
    "AWS::EC2::FlowLog",
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::InstanceProfile",
    "AWS::KMS::Alias",
    "AWS::S3::BucketPolicy",
    "AWS::Logs::LogGroup",
    "AWS::WAFv2::LoggingConfiguration",
    "AWS::WAFv2::WebACLAssociation",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::ECS::TaskDefinition",
    "AWS::ElasticLoadBalancingV2::Listener",
    "AWS::ElasticLoadBalancingV2::ListenerRule",
    "AWS::ElasticLoadBalancingV2::TargetGroup",
    "AWS::RDS::DBSubnetGroup",
    "AWS::RDS::DBClusterParameterGroup",
    "AWS::RDS::DBParameterGroup",
    "AWS::RDS::DBInstance",
    "AWS::CloudFront::OriginAccessControl",
    "AWS::CloudFront::ResponseHeadersPolicy",
    "AWS::CloudFront::CachePolicy",
    "AWS::CloudFront::OriginRequestPolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::Lambda::Permission",
}
# Plumbing whose references are not followed: a policy names everything its role may touch.
NOT_FOLLOWED = {"AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::EC2::SecurityGroup"}
SHAPES = {
    "ElasticLoadBalancingV2": "trapezium",
    "ECS": "box3d",
    "RDS": "cylinder",
    "DynamoDB": "cylinder",
    "S3": "folder",
    "ECR": "folder",
    "CloudFront": "hexagon",
    "WAFv2": "octagon",
    "KMS": "note",
    "EC2": "component",
    "CloudWatch": "tab",
    "SNS": "cds",
    "CodePipeline": "rarrow",
    "CodeBuild": "rarrow",
}
GLOBAL_PEER_LABELS = {ANY: "Internet (0.0.0.0/0)"}
# What people call a resource type on a sheet (the AWS service's own name for it); any other type is
# shown as its CloudFormation type without the "AWS::" prefix ("Scheduler Schedule").
READABLE = {
    "AWS::Backup::BackupPlan": "AWS Backup plan",
    "AWS::Backup::BackupSelection": "AWS Backup selection",
    "AWS::Backup::BackupVault": "AWS Backup vault",
    "AWS::CloudFormation::CustomResource": "custom resource",
    "AWS::CodeBuild::Project": "CodeBuild project",
    "AWS::CodeCommit::Repository": "CodeCommit repository",
    "AWS::CodePipeline::Pipeline": "CodePipeline pipeline",
    "AWS::ECR::ReplicationConfiguration": "ECR replication",
    "AWS::ECR::RepositoryCreationTemplate": "ECR repository creation template",
    "AWS::Lambda::EventInvokeConfig": "Lambda asynchronous invocation settings",
    "AWS::SES::EmailIdentity": "SES e-mail identity",
    "AWS::SNS::Subscription": "SNS subscription",
    "AWS::SecretsManager::RotationSchedule": "secret rotation schedule",
    "AWS::SecretsManager::SecretTargetAttachment": "secret attached to the database",
    "AWS::ServiceDiscovery::HttpNamespace": "Cloud Map namespace",
    "AWS::CloudFront::Distribution": "CloudFront distribution",
    "AWS::CloudWatch::Alarm": "CloudWatch alarm",
    "AWS::CloudWatch::CompositeAlarm": "CloudWatch composite alarm",
    "AWS::CloudWatch::Dashboard": "CloudWatch dashboard",
    "AWS::EC2::InternetGateway": "internet gateway",
    "AWS::EC2::NatGateway": "NAT gateway",
    "AWS::EC2::VPCEndpoint": "VPC endpoint",
    "AWS::ECR::Repository": "ECR repository",
    "AWS::ECS::Cluster": "ECS cluster",
    "AWS::ECS::Service": "ECS service",
    "AWS::ElasticLoadBalancingV2::LoadBalancer": "load balancer",
    "AWS::Events::Rule": "EventBridge rule",
    "AWS::KMS::Key": "KMS key",
    "AWS::Lambda::Function": "Lambda function",
    "AWS::RDS::DBCluster": "Aurora cluster",
    "AWS::RDS::GlobalCluster": "Aurora global database",
    "AWS::Route53::HealthCheck": "Route 53 health check",
    "AWS::Route53::RecordSet": "Route 53 record",
    "AWS::S3::Bucket": "S3 bucket",
    "AWS::Scheduler::Schedule": "EventBridge Scheduler schedule",
    "AWS::SecretsManager::Secret": "Secrets Manager secret",
    "AWS::SNS::Topic": "SNS topic",
    "AWS::SQS::Queue": "SQS queue",
    "AWS::WAFv2::WebACL": "WAF web ACL",
}
ROUTE = "route "  # a reference kind: a subnet's route to its NAT gateway, the NAT gateway's to the Internet
ORIGIN_RECORD = "its DNS record (DEPLOY.md)"  # a host-name origin to the one load balancer it names


class DiagramError(Exception):
    """The output folder cannot be drawn (missing or unreadable files)."""


@dataclass(frozen=True)
class StackDoc:
    name: str
    layer: str
    region: str
    account: str
    body: dict[str, Any]
    own: bool = True  # its template is in the folder drawn (not the project's, nor a DR partner's)


@dataclass
class Diagram:
    """What is drawn: nodes in clusters, arrows. Keys are node ids ``stack/LogicalId`` (or ``peer:...``)."""

    title: str
    nodes: dict[str, str] = field(default_factory=dict)  # id -> label
    shapes: dict[str, str] = field(default_factory=dict)
    place: dict[str, tuple[str, ...]] = field(default_factory=dict)  # id -> cluster path
    flows: set[tuple[str, str, str]] = field(default_factory=set)  # security-group arrows (from, to, ports)
    references: set[tuple[str, str, str]] = field(default_factory=set)  # (from, to, "ref" | "import" | label)
    subnets: dict[tuple[str, str], str] = field(default_factory=dict)  # (tier, zone) -> node id
    tier: dict[str, str] = field(default_factory=dict)  # node id -> the subnet tier (row) it sits in
    detail: str = "traffic"

    def arrows(self, source: str, target: str) -> list[str]:
        """The port labels of the security-group arrows from ``source`` to ``target``."""
        return sorted(p for s, t, p in self.flows if s == source and t == target)


# --- reading ----------------------------------------------------------------------------------


def read_output(folder: Path) -> tuple[dict[str, Any], list[StackDoc]]:
    """The manifest of ``folder`` and every stack it lists, with its JSON template and account."""
    try:
        described = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        project_account = described["account_id"]
        project_manifest = folder.parent / "project" / "manifest.json"
        if project_manifest.is_file():
            project_account = json.loads(project_manifest.read_text(encoding="utf-8"))["account_id"]
        bodies = {
            entry["name"]: json.loads((folder / entry["templates"]["json"]).read_text(encoding="utf-8"))
            for entry in described["stacks"]
        }
        return described, stack_docs(described, bodies, project_account)
    except (OSError, KeyError, json.JSONDecodeError) as error:
        raise DiagramError(f"{folder}: cannot read the manifest and its templates: {error}") from error


def stack_docs(described: dict[str, Any], bodies: dict[str, dict[str, Any]], project_account: str) -> list[StackDoc]:
    """The manifest's stacks in order, each with its template body and the account it deploys to."""
    return [
        StackDoc(
            entry["name"],
            entry["layer"],
            entry["region"],
            project_account if entry["scope"] == "project" else described["account_id"],
            bodies[entry["name"]],
            _in_folder(str(entry["templates"]["json"]), described.get("environment") or "project"),
        )
        for entry in described["stacks"]
    ]


def _in_folder(template: str, folder: str) -> bool:
    """Whether a manifest's template path (relative to its folder) stays in that folder."""
    return posixpath.dirname(posixpath.normpath(posixpath.join(folder, template))) == folder


# --- the model --------------------------------------------------------------------------------


def _references(node: Any) -> Iterator[tuple[str, str]]:
    """``("ref", LogicalId)`` and ``("import", ExportName)`` anywhere in a template fragment."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str) and not value.startswith("AWS::"):
                yield ("ref", value)
            elif key == "Fn::GetAtt" and isinstance(value, list) and value:
                yield ("ref", str(value[0]))
            elif key == "Fn::ImportValue" and isinstance(value, str):
                yield ("import", value)
            elif key == "Fn::Sub" and isinstance(value, str):
                yield from (("ref", name.split(".")[0]) for name in re.findall(r"\$\{([A-Za-z0-9.]+)\}", value))
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


class _Model:
    def __init__(self, stacks: list[StackDoc]) -> None:
        self.stacks = {s.name: s for s in stacks}
        self.exports: dict[str, tuple[str, Any]] = {}  # export name -> (stack, output value)
        self.parameter_sources: dict[str, dict[str, tuple[str, Any]]] = {}  # stack -> parameter -> (stack, value)
        for stack in stacks:
            for parameter, source in stack.body.get("Metadata", {}).get(SOURCES_METADATA, {}).items():
                producer = self.stacks.get(source.get("Stack", ""))
                output = producer.body.get("Outputs", {}).get(source.get("Output", "")) if producer else None
                if producer and output:
                    self.parameter_sources.setdefault(stack.name, {})[parameter] = (producer.name, output["Value"])
            for output in stack.body.get("Outputs", {}).values():
                if "Export" in output:
                    self.exports[output["Export"]["Name"]] = (stack.name, output["Value"])

    def resource(self, stack: str, logical: str) -> dict[str, Any] | None:
        found = self.stacks[stack].body.get("Resources", {}).get(logical)
        return found if isinstance(found, dict) else None

    def targets(self, stack: str, fragment: Any) -> Iterator[tuple[str, str, bool]]:
        """The resources ``(stack, logical, through_import)`` a fragment refers to, imports resolved."""
        for kind, name in _references(fragment):
            if kind == "ref":
                if self.resource(stack, name) is not None:
                    yield (stack, name, False)
                elif name in self.parameter_sources.get(stack, {}):  # a parameter another stack's output fills
                    yield from ((s, r, True) for s, r, _ in self.targets(*self.parameter_sources[stack][name]))
            elif name in self.exports:
                source, value = self.exports[name]
                yield from ((s, r, True) for s, r, _ in self.targets(source, value))

    def groups_in(self, stack: str, fragment: Any) -> set[tuple[str, str]]:
        return {(s, r) for s, r, _ in self.targets(stack, fragment) if self.type_of(s, r) == "AWS::EC2::SecurityGroup"}

    def type_of(self, stack: str, logical: str) -> str:
        found = self.resource(stack, logical)
        return str(found.get("Type", "")) if found else ""

    def reach(self, stack: str, logical: str) -> set[tuple[str, str, bool]]:
        """Resources reached from one resource's properties, following plumbing (not IAM, not groups)."""
        start = self.resource(stack, logical) or {}
        seen: set[tuple[str, str]] = {(stack, logical)}
        found: set[tuple[str, str, bool]] = set()
        queue: list[tuple[str, Any, bool]] = [(stack, start.get("Properties", {}), False)]
        while queue:
            here, fragment, imported = queue.pop()
            for s, r, through in self.targets(here, fragment):
                if (s, r) in seen:
                    continue
                seen.add((s, r))
                type_ = self.type_of(s, r)
                found.add((s, r, imported or through))
                if type_ in PLUMBING and type_ not in NOT_FOLLOWED:
                    queue.append((s, (self.resource(s, r) or {}).get("Properties", {}), imported or through))
        return found


def _zone(subnet: dict[str, Any]) -> str:
    zone = subnet.get("Properties", {}).get("AvailabilityZone")
    if isinstance(zone, dict) and "Fn::Select" in zone:
        return "abcdefghij"[int(zone["Fn::Select"][0])]
    return str(zone or "?")


def _tag(resource: dict[str, Any], key: str) -> str | None:
    for tag in resource.get("Properties", {}).get("Tags", []) or []:
        if isinstance(tag, dict) and tag.get("Key") == key:
            return str(tag.get("Value"))
    return None


def _short(type_: str) -> str:
    return type_.removeprefix("AWS::").replace("::", " ")


def _label(type_: str) -> str:
    """A resource type as a sheet names it: :data:`READABLE`, else its short CloudFormation type."""
    return READABLE.get(type_, _short(type_))


def _ports(rule: dict[str, Any]) -> tuple[str, int, int]:
    protocol = str(rule.get("IpProtocol", "-1"))
    if protocol == "-1":
        return ("all", 0, 65535)
    return (protocol, int(rule.get("FromPort", 0)), int(rule.get("ToPort", 65535)))


def _port_label(ports: tuple[str, int, int]) -> str:
    protocol, low, high = ports
    if protocol == "all":
        return "all traffic"
    return f"{protocol} {low}" if low == high else f"{protocol} {low}-{high}"


def _covers(outer: tuple[str, int, int], inner: tuple[str, int, int]) -> bool:
    return (outer[0] in ("all", inner[0])) and outer[1] <= inner[1] and inner[2] <= outer[2]


def _peer_of(rule: dict[str, Any], direction: str) -> str | None:
    """A non-group peer of a rule as a node id: a CIDR or a prefix list."""
    prefix = "Source" if direction == "in" else "Destination"
    for key in ("CidrIp", "CidrIpv6"):
        if isinstance(rule.get(key), str):
            return f"peer:{rule[key]}"
    listed = rule.get(f"{prefix}PrefixListId")
    if isinstance(listed, str):
        return f"peer:{listed}"
    if isinstance(listed, dict) and isinstance(listed.get("Fn::GetAtt"), list):
        # An AWS-managed list whose id a custom resource looks up at deploy time (security stack):
        # drawn by the attribute that names it ("CloudFront", "Route53HealthChecks").
        return f"peer:prefix list {listed['Fn::GetAtt'][1]}"
    return None


def _is_loopback_placeholder(peer: str) -> bool:
    """AWS's trick to close a group: one egress rule to 127.0.0.1/32, which reaches nothing."""
    try:
        return ipaddress.ip_network(peer.removeprefix("peer:")).is_loopback
    except ValueError:
        return False


Group = tuple[str, str]  # a security group: (stack, logical ID)
Ports = tuple[str, int, int]  # (protocol or "all", from port, to port)
Node = tuple[str, str]  # a resource: (stack, logical ID)


def _region_path(stack: StackDoc) -> tuple[str, ...]:
    return (f"account {stack.account}, {stack.region}",)


@dataclass
class _Layout:
    """Where subnets and VPCs are, so that resources can be placed in their tier."""

    subnet_tier: dict[Node, str] = field(default_factory=dict)
    vpc_of: dict[str, tuple[str, ...]] = field(default_factory=dict)  # stack -> cluster path of its VPC


def build(described: dict[str, Any], stacks: list[StackDoc], detail: str = "traffic") -> Diagram:
    """The diagram of one folder's own stacks (an environment's, or the project's): ``detail`` is
    ``"traffic"`` (the traffic paths) or ``"all"`` (every resource and reference)."""
    if detail not in DETAILS:
        raise DiagramError(f"detail {detail!r}: use one of {', '.join(DETAILS)}")
    stacks = [s for s in stacks if s.own]
    model = _Model(stacks)
    environment = described.get("environment") or "project"
    shown = "traffic paths" if detail == "traffic" else "every resource"
    diagram = Diagram(
        f"{described['project']} {environment}: {shown}, drawn from the generated templates", detail=detail
    )
    layout = _subnets(stacks, diagram)
    owner: dict[Node, str] = {}  # resource -> the node that draws it
    for stack in stacks:
        _resource_nodes(model, stack, layout, diagram, owner)
    _security_flows(model, stacks, diagram, owner)
    _literal_origins(stacks, diagram, owner)
    _nat_routes(stacks, diagram, owner)
    for (stack_name, logical), node in sorted(owner.items()):  # references, followed through plumbing
        for s, r, imported in model.reach(stack_name, logical):
            target = owner.get((s, r))
            if target and target != node:
                diagram.references.add((node, target, "import" if imported else "ref"))
    _rows(diagram)
    if detail == "traffic":
        _traffic_only(model, owner, diagram)
    return diagram


def _rows(diagram: Diagram) -> None:
    """A resource placed in a tier sits in its VPC's cluster, on its tier's row (zones are the columns)."""
    for node, path in list(diagram.place.items()):
        if node in diagram.tier or not path or not path[-1].endswith(" tier"):
            continue
        diagram.tier[node] = path[-1].removesuffix(" tier")
        diagram.place[node] = path[:-1]


def _traffic_only(model: _Model, owner: dict[Node, str], diagram: Diagram) -> None:
    """Keep the traffic paths: security-group arrows, the CDN's origins (and its firewall), the
    subnets; drop every other reference and the resources no path touches."""
    edge_nodes = {
        node: (s, r) for (s, r), node in owner.items() if model.type_of(s, r) == "AWS::CloudFront::Distribution"
    }
    diagram.references = {
        (source, target, kind)
        for source, target, kind in diagram.references
        if kind not in ("ref", "import") or source in edge_nodes
    }
    kept = set(diagram.subnets.values())
    kept.update(n for flow in diagram.flows for n in flow[:2])
    kept.update(n for reference in diagram.references for n in reference[:2])
    for node in set(diagram.nodes) - kept:
        for table in (diagram.nodes, diagram.shapes, diagram.place, diagram.tier):
            table.pop(node, None)


def _subnets(stacks: list[StackDoc], diagram: Diagram) -> _Layout:
    """One node per subnet, in a cluster per tier inside its VPC's cluster."""
    layout = _Layout()
    for stack in stacks:
        resources = sorted(stack.body.get("Resources", {}).items())
        for logical, resource in resources:
            if resource.get("Type") == "AWS::EC2::VPC":
                cidr = resource.get("Properties", {}).get("CidrBlock", "")
                layout.vpc_of[stack.name] = (*_region_path(stack), f"VPC {logical} {cidr} ({stack.name})")
        for logical, resource in resources:
            if resource.get("Type") != "AWS::EC2::Subnet":
                continue
            tier = _tag(resource, "Tier") or re.sub(r"Subnet.*$", "", logical).lower() or "subnet"
            zone = _zone(resource)
            node = f"{stack.name}/{logical}"
            layout.subnet_tier[(stack.name, logical)] = tier
            cidr = resource.get("Properties", {}).get("CidrBlock", "")
            diagram.nodes[node] = f"{tier} subnet\\nzone {zone}\\n{cidr}"
            diagram.shapes[node] = "box"
            diagram.place[node] = (*layout.vpc_of.get(stack.name, _region_path(stack)), f"zone {zone}")
            diagram.tier[node] = tier
            diagram.subnets[(tier, zone)] = node
    return layout


def _resource_nodes(model: _Model, stack: StackDoc, layout: _Layout, diagram: Diagram, owner: dict[Node, str]) -> None:
    """Every resource that is not plumbing, collapsed into one node per type when more than a few."""
    by_type: dict[str, list[str]] = {}
    for logical, resource in sorted(stack.body.get("Resources", {}).items()):
        type_ = str(resource.get("Type", ""))
        if type_ not in PLUMBING:
            by_type.setdefault(type_, []).append(logical)
    for type_, logicals in sorted(by_type.items()):
        shape = SHAPES.get(type_.split("::")[1] if type_.count("::") >= 2 else type_, "box")
        places = {_placement(model, stack, logical, layout) for logical in logicals}
        if len(logicals) > COLLAPSE_OVER:
            node = f"{stack.name}/{type_}"
            diagram.nodes[node] = f"{len(logicals)} x {_label(type_)}\\n{stack.name}"
            diagram.shapes[node] = shape
            diagram.place[node] = places.pop() if len(places) == 1 else (*_region_path(stack), f"stack {stack.name}")
            owner.update({(stack.name, logical): node for logical in logicals})
            continue
        for logical in logicals:
            node = f"{stack.name}/{logical}"
            diagram.nodes[node] = f"{_label(type_)}\\n{logical}\\n{stack.name}"
            diagram.shapes[node] = shape
            diagram.place[node] = _placement(model, stack, logical, layout)
            owner[(stack.name, logical)] = node


def _literal_origins(stacks: list[StackDoc], diagram: Diagram, owner: dict[Node, str]) -> None:
    """A CDN origin given as a host name (not a reference) is drawn as a peer the CDN connects to,
    and a custom (HTTP) origin's peer leads to the load balancer when the sheet has exactly one."""
    balancers = sorted(
        {node for (s, r), node in owner.items() if _type(stacks, s, r) == "AWS::ElasticLoadBalancingV2::LoadBalancer"}
    )
    for stack in stacks:
        for logical, resource in sorted(stack.body.get("Resources", {}).items()):
            if resource.get("Type") != "AWS::CloudFront::Distribution" or (stack.name, logical) not in owner:
                continue
            config = resource.get("Properties", {}).get("DistributionConfig", {})
            for origin in config.get("Origins", []):
                domain = origin.get("DomainName")
                if isinstance(domain, str):
                    peer = f"peer:{domain}"
                    diagram.nodes.setdefault(peer, f"origin {domain}\\n(a host name: not in any template)")
                    diagram.shapes.setdefault(peer, "ellipse")
                    diagram.place.setdefault(peer, ())
                    protocol = origin.get("CustomOriginConfig", {}).get("OriginProtocolPolicy", "origin")
                    label = f"origin {origin.get('Id', '')} ({protocol})"
                    diagram.references.add((owner[(stack.name, logical)], peer, label))
                    if "CustomOriginConfig" in origin and len(balancers) == 1:
                        # The name is a DNS record outside the templates (DEPLOY.md: the origin name) or a
                        # Route 53 record of the dns stack; either way it leads to the sheet's one load
                        # balancer (its certificate must cover the name: CloudFront checks it).
                        diagram.references.add((peer, balancers[0], ORIGIN_RECORD))


def _type(stacks: list[StackDoc], stack: str, logical: str) -> str:
    body = next((s.body for s in stacks if s.name == stack), {})
    return str(body.get("Resources", {}).get(logical, {}).get("Type", ""))


def _nat_routes(stacks: list[StackDoc], diagram: Diagram, owner: dict[Node, str]) -> None:
    """The way out to the Internet: each subnet whose route table sends a destination to a NAT gateway
    (``AWS::EC2::Route`` ``NatGatewayId``, through its ``SubnetRouteTableAssociation``) gets an arrow
    to that gateway, and the gateway one to the Internet; the gateway sits in its subnet's zone."""
    for stack in stacks:
        resources = stack.body.get("Resources", {})
        tables: dict[str, list[str]] = {}
        for resource in resources.values():
            props = resource.get("Properties", {})
            if resource.get("Type") == "AWS::EC2::SubnetRouteTableAssociation":
                table, subnet = props.get("RouteTableId", {}), props.get("SubnetId", {})
                if isinstance(table, dict) and isinstance(subnet, dict) and "Ref" in table and "Ref" in subnet:
                    tables.setdefault(table["Ref"], []).append(subnet["Ref"])
        for _, resource in sorted(resources.items()):
            props = resource.get("Properties", {})
            gateway, table = props.get("NatGatewayId"), props.get("RouteTableId")
            if resource.get("Type") != "AWS::EC2::Route" or not isinstance(gateway, dict) or "Ref" not in gateway:
                continue
            nat = owner.get((stack.name, gateway["Ref"]))
            if nat is None or not isinstance(table, dict):
                continue
            label = f"{ROUTE}{props.get('DestinationCidrBlock', props.get('DestinationIpv6CidrBlock', ''))}"
            for subnet in sorted(tables.get(str(table.get("Ref")), [])):
                if f"{stack.name}/{subnet}" in diagram.nodes:
                    diagram.references.add((f"{stack.name}/{subnet}", nat, label))
            internet = f"peer:{ANY}"
            diagram.nodes.setdefault(internet, GLOBAL_PEER_LABELS[ANY])
            diagram.shapes.setdefault(internet, "ellipse")
            diagram.place.setdefault(internet, ())
            diagram.references.add((nat, internet, f"{ROUTE}to the Internet"))
            home = (resources.get(gateway["Ref"], {}).get("Properties", {}).get("SubnetId") or {}).get("Ref")
            if f"{stack.name}/{home}" in diagram.nodes and nat.endswith(f"/{gateway['Ref']}"):
                diagram.place[nat] = diagram.place[f"{stack.name}/{home}"]  # its zone's column
                diagram.tier[nat] = diagram.tier[f"{stack.name}/{home}"]


def _placement(model: _Model, stack: StackDoc, logical: str, layout: _Layout) -> tuple[str, ...]:
    """Inside the tier its subnets are in, else inside its VPC, else in its stack's box in its region."""
    reached = {(s, r) for s, r, _ in model.reach(stack.name, logical)}
    tiers = {layout.subnet_tier[node] for node in reached if node in layout.subnet_tier}
    vpcs = {s for s, r in reached if (s, r) in layout.subnet_tier or model.type_of(s, r) == "AWS::EC2::VPC"}
    if len(vpcs) == 1:
        vpc = layout.vpc_of[vpcs.pop()]
        return (*vpc, f"{tiers.pop()} tier") if len(tiers) == 1 else vpc
    return (*_region_path(stack), f"stack {stack.name}")


@dataclass
class _Rules:
    """Every security group and rule of the stacks: peers are groups or peer node ids (CIDR, prefix list)."""

    groups: list[Group] = field(default_factory=list)
    open_egress: set[Group] = field(default_factory=set)  # no SecurityGroupEgress: AWS's allow-all egress
    ingress: list[tuple[Group, Group | str, Ports]] = field(default_factory=list)
    egress: list[tuple[Group, Group | str, Ports]] = field(default_factory=list)

    def add(self, model: _Model, stack: str, group: Group, body: dict[str, Any], direction: str) -> None:
        key = "SourceSecurityGroupId" if direction == "in" else "DestinationSecurityGroupId"
        peers: list[Group | str] = sorted(model.groups_in(stack, body.get(key))) if key in body else []
        if not peers:
            other = _peer_of(body, direction)
            if other is None or _is_loopback_placeholder(other):
                return
            peers = [other]
        for peer in peers:
            (self.ingress if direction == "in" else self.egress).append((group, peer, _ports(body)))

    def leaves(self, group: Group, target: Group, ports: Ports) -> bool:
        """Whether ``group``'s egress lets traffic on ``ports`` go to ``target``."""
        if group in self.open_egress:
            return True
        return any(
            g == group and p in (target, f"peer:{ANY}") and _covers(allowed, ports) for g, p, allowed in self.egress
        )


def _collect_rules(model: _Model, stacks: list[StackDoc]) -> _Rules:
    rules = _Rules()
    for stack in stacks:
        for logical, resource in sorted(stack.body.get("Resources", {}).items()):
            type_ = resource.get("Type")
            props = resource.get("Properties", {})
            if type_ == "AWS::EC2::SecurityGroup":
                group = (stack.name, logical)
                rules.groups.append(group)
                if "SecurityGroupEgress" not in props:
                    rules.open_egress.add(group)
                for inline in props.get("SecurityGroupIngress", []) or []:
                    rules.add(model, stack.name, group, inline, "in")
                for inline in props.get("SecurityGroupEgress", []) or []:
                    rules.add(model, stack.name, group, inline, "out")
            elif type_ in ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress"):
                for group in sorted(model.groups_in(stack.name, props.get("GroupId"))):
                    rules.add(model, stack.name, group, props, "in" if type_.endswith("Ingress") else "out")
    return rules


def _security_flows(model: _Model, stacks: list[StackDoc], diagram: Diagram, owner: dict[Node, str]) -> None:
    """Arrows for what the security groups allow, between the drawn resources that use the groups."""
    rules = _collect_rules(model, stacks)
    members: dict[Group, set[str]] = {}  # the drawn resources whose properties name a group
    for (stack_name, logical), node in owner.items():
        resource = model.resource(stack_name, logical) or {}
        for group in model.groups_in(stack_name, resource.get("Properties", {})):
            members.setdefault(group, set()).add(node)
    by_stack = {s.name: s for s in stacks}
    for group in rules.groups:
        if group not in members:  # a group nothing drawn uses: draw the group itself
            node = f"{group[0]}/{group[1]}"
            diagram.nodes[node] = f"EC2 SecurityGroup\\n{group[1]}\\n{group[0]}"
            diagram.shapes[node] = "box"
            diagram.place[node] = (*_region_path(by_stack[group[0]]), f"stack {group[0]}")
            members[group] = {node}

    def peer_node(peer: str) -> str:
        address = peer.removeprefix("peer:")
        diagram.nodes.setdefault(peer, GLOBAL_PEER_LABELS.get(address, address))
        diagram.shapes.setdefault(peer, "ellipse")
        diagram.place.setdefault(peer, ())
        return peer

    for group, peer, ports in rules.ingress:
        label = _port_label(ports)
        if isinstance(peer, str):
            diagram.flows.update((peer_node(peer), node, label) for node in members[group])
        elif rules.leaves(peer, group, ports):
            diagram.flows.update(
                (source, node, label)
                for source in members.get(peer, set())
                for node in members[group]
                if source != node
            )
    for group, peer, ports in rules.egress:
        if isinstance(peer, str):
            diagram.flows.update((node, peer_node(peer), _port_label(ports)) for node in members[group])


# --- drawing ----------------------------------------------------------------------------------


def _cluster_id(path: tuple[str, ...]) -> str:
    return "cluster_" + re.sub(r"[^A-Za-z0-9]+", "_", "__".join(path)).strip("_")


def dot_source(diagram: Diagram) -> str:
    """The DOT text of the diagram, everything in sorted order (byte-identical for the same input)."""
    graph = graphviz.Digraph("architecture", comment=None)
    graph.attr(
        label=diagram.title,
        labelloc="t",
        rankdir="TB" if diagram.subnets else "LR",  # without a VPC (the project) stacks are rows, not columns
        compound="true",
        fontname="Helvetica",
        newrank="true",
        # a sheet for people fits a page width; every resource (all) is for zooming into the SVG
        **({"size": PAGE_INCHES} if diagram.detail == "traffic" or not diagram.subnets else {}),
        nodesep="0.3",
        ranksep="0.5",
    )
    graph.attr("node", fontname="Helvetica", fontsize="10", style="filled", fillcolor="white")
    graph.attr("edge", fontname="Helvetica", fontsize="9")
    ids = {node: re.sub(r"[^A-Za-z0-9]+", "_", node).strip("_") for node in diagram.nodes}
    if len(set(ids.values())) != len(ids):
        raise DiagramError(f"two nodes share a DOT id: {sorted(ids)}")
    tree: dict[tuple[str, ...], list[str]] = {}
    for node in sorted(diagram.nodes):
        path = diagram.place.get(node, ())
        tree.setdefault(path, []).append(node)
        for depth in range(len(path)):
            tree.setdefault(path[:depth], [])

    def fill(into: graphviz.Digraph, path: tuple[str, ...]) -> None:
        for node in tree.get(path, []):
            into.node(ids[node], label=diagram.nodes[node], shape=diagram.shapes.get(node, "box"))
        children = sorted(p for p in tree if len(p) == len(path) + 1 and p[: len(path)] == path)
        for child in children:
            with into.subgraph(name=_cluster_id(child)) as sub:
                sub.attr(label=child[-1], style="rounded", color="gray40")
                fill(sub, child)

    fill(graph, ())
    _grid(graph, diagram, ids)
    for source, target, ports in sorted(diagram.flows):
        # Between two nodes of one cluster (a service calling another in its tier) the ports go in
        # an xlabel: an edge label there makes Graphviz 2.43's dot fail ("trouble in init_rank").
        same = diagram.place.get(source, ()) == diagram.place.get(target, ())
        graph.edge(
            ids[source], ids[target], **{"xlabel" if same else "label": ports}, color="firebrick", penwidth="1.5"
        )
    for source, target, kind in sorted(diagram.references):
        if kind in ("ref", "import"):
            graph.edge(
                ids[source],
                ids[target],
                style="dashed" if kind == "import" else "dotted",
                color="gray50",
                arrowsize="0.6",
            )
        else:  # an origin or a route: labelled (an xlabel within one cluster, as for the flows above)
            same = diagram.place.get(source, ()) == diagram.place.get(target, ())
            color = "darkgreen" if kind.startswith(ROUTE) else "steelblue"
            graph.edge(ids[source], ids[target], **{"xlabel" if same else "label": kind}, color=color)
    graph.node("legend", label=_legend(diagram), shape="plaintext", fillcolor="white")
    for node in _bottom_row(diagram):  # the legend below the zones' columns (which keeps them in order)
        graph.edge(ids[node], "legend", style="invis")
    return graph.source


def _bottom_row(diagram: Diagram) -> list[str]:
    """The subnets of the lowest tier, zone by zone."""
    if not diagram.subnets:
        return []
    last = max({tier for tier, _ in diagram.subnets}, key=_tier_key)
    return [node for (tier, _), node in sorted(diagram.subnets.items()) if tier == last]


def _tier_key(tier: str) -> tuple[int, str]:
    return (TIER_ORDER.index(tier), "") if tier in TIER_ORDER else (len(TIER_ORDER), tier)


def _grid(graph: graphviz.Digraph, diagram: Diagram, ids: dict[str, str]) -> None:
    """Zones as columns, tiers as rows: per VPC, each tier's subnets and resources share a rank, the
    subnets of a zone are stacked in tier order and the zones follow each other left to right
    (invisible edges, which only order the layout)."""
    vpcs = sorted({diagram.place[n][:-1] for n in diagram.subnets.values()})
    for vpc in vpcs:
        subnets = {key: node for key, node in diagram.subnets.items() if diagram.place[node][:-1] == vpc}
        tiers = sorted({tier for tier, _ in subnets}, key=_tier_key)
        zones = sorted({zone for _, zone in subnets})
        for tier in tiers:
            row = sorted(n for n, t in diagram.tier.items() if t == tier and diagram.place[n][: len(vpc)] == vpc)
            with graph.subgraph() as rank:
                rank.attr(rank="same")
                for node in row:
                    rank.node(ids[node])
        for zone in zones:
            column = [subnets[(tier, zone)] for tier in tiers if (tier, zone) in subnets]
            for upper, lower in itertools.pairwise(column):
                graph.edge(ids[upper], ids[lower], style="invis")


def _legend(diagram: Diagram) -> str:
    """An HTML-like table: what the arrows and shapes mean (only the arrows the sheet draws)."""
    kinds = {kind for _, _, kind in diagram.references}
    arrows = [("firebrick", "solid", "traffic the security groups allow (protocol, port)")] if diagram.flows else []
    if {k for k in kinds - {"ref", "import"} if not k.startswith(ROUTE)}:
        arrows.append(("steelblue", "solid", "a CDN origin given as a host name, and the load balancer it names"))
    if any(k.startswith(ROUTE) for k in kinds):
        arrows.append(("darkgreen", "solid", "a route: a subnet's to its NAT gateway, the NAT gateway's out"))
    if "ref" in kinds:
        arrows.append(("gray50", "dotted", "a reference within a stack"))
    if "import" in kinds:
        arrows.append(("gray50", "dashed", "a reference across stacks (an export, or an output passed on)"))
    shapes = sorted({diagram.shapes.get(n, "box") for n in diagram.nodes})
    meaning = {
        "box": "subnet (a row per tier, a column per zone) or other resource",
        "box3d": "ECS cluster or service",
        "cds": "SNS topic",
        "component": "NAT gateway, VPC endpoint or other EC2 resource",
        "cylinder": "database",
        "ellipse": "outside the templates (the Internet, a prefix list, a host name)",
        "folder": "S3 bucket or ECR repository",
        "hexagon": "CloudFront distribution",
        "note": "KMS key",
        "octagon": "WAF web ACL",
        "rarrow": "pipeline or build",
        "tab": "CloudWatch",
        "trapezium": "load balancer",
    }
    rows = [f'<TR><TD COLSPAN="2"><B>Legend</B> ({diagram.detail})</TD></TR>']
    rows += [
        f'<TR><TD><FONT COLOR="{color}">{"&#8594;" if style == "solid" else "&#8594; (" + style + ")"}</FONT></TD>'
        f'<TD ALIGN="LEFT">{html.escape(text)}</TD></TR>'
        for color, style, text in arrows
    ]
    rows += [
        f'<TR><TD>{shape}</TD><TD ALIGN="LEFT">{html.escape(meaning.get(shape, "other resource"))}</TD></TR>'
        for shape in shapes
    ]
    return '<<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="2">' + "".join(rows) + "</TABLE>>"


def dot_command() -> str:
    found = shutil.which("dot")
    if not found:
        raise DiagramError("Graphviz's `dot` is not installed: run `make diagram` (it installs the graphviz package)")
    return found


def render(source: str, fmt: str) -> bytes:
    """SVG or PNG bytes from DOT text; the SVG without Graphviz's version comment."""
    result = subprocess.run([dot_command(), f"-T{fmt}"], input=source.encode(), capture_output=True, check=False)
    if result.returncode != 0:
        raise DiagramError(f"dot -T{fmt} exited {result.returncode}: {result.stderr.decode()[-1000:]}")
    if fmt == "svg":
        return re.sub(rb"<!-- Generated by graphviz version [^>]*-->\n", b"", result.stdout)
    return result.stdout


def write(folder: Path, dot_only: bool = False, detail: str = "traffic") -> list[Path]:
    """Draw ``folder`` (an output/<env>/ folder) into architecture.dot, .svg and .png beside its templates.
    The project's folder (no VPC, no traffic paths) is always drawn whole. With ``dot_only`` an SVG or
    PNG drawn earlier is removed: it showed another drawing than the DOT written now (another detail,
    or templates since rebuilt), and three files that disagree are worse than one."""
    described, stacks = read_output(folder)
    source = dot_source(build(described, stacks, detail if described.get("environment") else "all"))
    outputs = {"architecture.dot": source.encode()}
    if not dot_only:
        outputs["architecture.svg"] = render(source, "svg")
        outputs["architecture.png"] = render(source, "png")
    written = []
    for name, data in outputs.items():
        path = folder / name
        scratch = path.with_name(f".{name}.tmp")
        scratch.write_bytes(data)
        scratch.replace(path)
        written.append(path)
    if dot_only:
        for name in FILES:
            if name not in outputs:
                (folder / name).unlink(missing_ok=True)
    return written
