"""AWS's default quotas the output can reach, as data, and the whole-output check that counts
against them across stacks (a service stack adds target groups and rules to the platform stack's
load balancer, and rules to the security stack's groups: no single template shows the total).

Each quota: its name as AWS's quota page names it, the default value, what counts against it and
the page it comes from. Defaults only: an account may have raised an adjustable one, but the
output must deploy in a fresh account.

``check_quotas(manifests)`` reads the JSON templates of each environment folder (the stacks the
folder deploys itself; another folder's are counted there) and resolves ``Fn::ImportValue``
through the exports of the folder's stacks, so a rule in ``svc-api`` on the listener the platform
stack exports counts against that listener's load balancer.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra_templates.regions import check_regions

ELB_QUOTAS = "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-limits.html"
VPC_QUOTAS = "https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html#vpc-limits-security-groups"
PREFIX_LIST_WEIGHTS = "https://docs.aws.amazon.com/vpc/latest/userguide/working-with-aws-managed-prefix-lists.html"
ECS_QUOTAS = "https://docs.aws.amazon.com/general/latest/gr/ecs-service.html"
COMPOSITE_ALARMS = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutCompositeAlarm.html"
CLOUD_MAP_QUOTAS = "https://docs.aws.amazon.com/general/latest/gr/cloud_map.html"
SCHEDULER_QUOTAS = "https://docs.aws.amazon.com/scheduler/latest/UserGuide/scheduler-quotas.html"
CLOUDFRONT_QUOTAS = "https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html"
CLOUDFORMATION_QUOTAS = "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html"

# A template's size (CloudFormation User Guide, "CloudFormation quotas", CLOUDFORMATION_QUOTAS):
# "Template body size in a request" (TemplateBody: `aws cloudformation deploy` without --s3-bucket)
# and "Template body size in an Amazon S3 object" (TemplateURL: 1 MB). The same bytes as a file.
TEMPLATE_BODY_BYTES = 51_200
TEMPLATE_S3_BYTES = 1_048_576


@dataclass(frozen=True)
class Quota:
    name: str  # as AWS's quota page names it
    default: int
    counts: str  # what counts against it
    source: str  # the AWS page

    def exceeded(self, count: int, where: str) -> str:
        return f"{count} {self.counts} on {where}; AWS quota '{self.name}' is {self.default} ({self.source})"


TARGET_GROUPS_PER_ALB = Quota(
    "Target Groups per Application Load Balancer",
    100,
    "target groups attached (forwarded to by a listener's rules or default actions)",
    ELB_QUOTAS,
)
RULES_PER_ALB = Quota(
    "Rules per Application Load Balancer (excluding default rules)",
    100,
    "listener rules on its listeners",
    ELB_QUOTAS,
)
LOAD_BALANCERS_PER_REGION = Quota("Application Load Balancers per Region", 50, "load balancers", ELB_QUOTAS)
LISTENERS_PER_ALB = Quota("Listeners per Application Load Balancer", 50, "listeners", ELB_QUOTAS)
CERTIFICATES_PER_ALB = Quota(
    "Certificates per Application Load Balancer (excluding default certificates)",
    25,
    "certificates besides each listener's default one",
    ELB_QUOTAS,
)
TARGETS_PER_ALB = Quota(
    "Targets per Application Load Balancer",
    1000,
    "targets at most (each service's maximum task count, twice for blue/green while both colours run)",
    ELB_QUOTAS,
)
TARGET_GROUPS_PER_ACTION = Quota(
    "Target Groups per Action per Application Load Balancer", 5, "target groups in one forward action", ELB_QUOTAS
)
CONDITION_VALUES_PER_RULE = Quota("Condition values per rule", 5, "condition values in one rule", ELB_QUOTAS)
CONDITION_WILDCARDS_PER_RULE = Quota("Condition wildcards per rule", 5, "wildcards in one rule's values", ELB_QUOTAS)
INBOUND_RULES_PER_GROUP = Quota(
    "Inbound or outbound rules per security group",
    60,
    "inbound rules (a prefix list counts as its weight)",
    VPC_QUOTAS,
)
OUTBOUND_RULES_PER_GROUP = Quota(
    "Inbound or outbound rules per security group",
    60,
    "outbound rules (a prefix list counts as its weight)",
    VPC_QUOTAS,
)
GROUPS_PER_INTERFACE = Quota(
    "Security groups per network interface", 5, "security groups on one network interface", VPC_QUOTAS
)
# The page does not say whether the default behaviour counts: it is counted, the safe side.
CACHE_BEHAVIORS_PER_DISTRIBUTION = Quota(
    "Cache behaviors per distribution", 75, "cache behaviours (the default one included)", CLOUDFRONT_QUOTAS
)
SERVICES_PER_CLUSTER = Quota("Services per cluster", 5000, "ECS services", ECS_QUOTAS)
ALARMS_PER_COMPOSITE_RULE = Quota(
    "underlying alarms in a composite alarm's rule expression", 100, "alarms in the rule", COMPOSITE_ALARMS
)

# Service Connect registers each task of a backend as an instance of the backend's Cloud Map service
# (ECS Developer Guide, "Service Connect"): at most its maximum task count, twice during a rolling
# deployment (maximumPercent 200).
INSTANCES_PER_CLOUD_MAP_SERVICE = Quota(
    "Instances per service", 1000, "tasks registered at most (autoscaling max, twice while a release rolls)",
    CLOUD_MAP_QUOTAS,
)  # fmt: skip
SERVICES_PER_NAMESPACE = Quota("Services per namespace", 2000, "Service Connect services", CLOUD_MAP_QUOTAS)
SCHEDULES_PER_REGION = Quota("Schedules", 1_000_000, "EventBridge Scheduler schedules", SCHEDULER_QUOTAS)
# SQS sets no quota on the number of queues (Amazon SQS Developer Guide, "Amazon SQS quotas"): a
# worker's queue and the dead-letter queues count against nothing here.

QUOTAS: tuple[Quota, ...] = (
    LOAD_BALANCERS_PER_REGION,
    TARGET_GROUPS_PER_ALB,
    RULES_PER_ALB,
    LISTENERS_PER_ALB,
    CERTIFICATES_PER_ALB,
    TARGETS_PER_ALB,
    TARGET_GROUPS_PER_ACTION,
    CONDITION_VALUES_PER_RULE,
    CONDITION_WILDCARDS_PER_RULE,
    INBOUND_RULES_PER_GROUP,
    OUTBOUND_RULES_PER_GROUP,
    GROUPS_PER_INTERFACE,
    CACHE_BEHAVIORS_PER_DISTRIBUTION,
    SERVICES_PER_CLUSTER,
    ALARMS_PER_COMPOSITE_RULE,
    INSTANCES_PER_CLOUD_MAP_SERVICE,
    SERVICES_PER_NAMESPACE,
    SCHEDULES_PER_REGION,
)

# A prefix list in a rule counts as its maximum entries ("weight"), not as one rule. AWS's
# managed CloudFront origin-facing list weighs 55 (PREFIX_LIST_WEIGHTS). A template names a list by
# id only (pl-...), so an id the check cannot weigh counts as that, the heaviest list we reference.
CLOUDFRONT_ORIGIN_FACING_WEIGHT = 55
UNKNOWN_PREFIX_LIST_WEIGHT = CLOUDFRONT_ORIGIN_FACING_WEIGHT

# Where a resource's network interface takes its security groups (list-valued properties).
INTERFACE_GROUPS: dict[str, tuple[str, ...]] = {
    "AWS::ECS::Service": ("NetworkConfiguration", "AwsvpcConfiguration", "SecurityGroups"),
    "AWS::ElasticLoadBalancingV2::LoadBalancer": ("SecurityGroups",),
    "AWS::RDS::DBCluster": ("VpcSecurityGroupIds",),
    "AWS::RDS::DBInstance": ("VPCSecurityGroups",),
    "AWS::Lambda::Function": ("VpcConfig", "SecurityGroupIds"),
    "AWS::EC2::VPCEndpoint": ("SecurityGroupIds",),
}


# --- reading a folder -------------------------------------------------------------------------

Key = tuple[str, str]  # (stack name, logical ID)


@dataclass
class _Folder:
    """The stacks a folder deploys itself, and what their exports resolve to."""

    bodies: dict[str, dict[str, Any]]  # stack -> template
    exports: dict[str, tuple[str, Any]]  # export name -> (stack, value)

    def resolve(self, stack: str, value: Any) -> Key | None:
        """The resource a Ref / GetAtt / ImportValue (of a Ref or GetAtt) designates."""
        if isinstance(value, dict):
            if "Ref" in value and value["Ref"] in self.bodies[stack].get("Resources", {}):
                return (stack, value["Ref"])
            if "Fn::GetAtt" in value:
                target = value["Fn::GetAtt"]
                logical = target[0] if isinstance(target, list) else str(target).split(".")[0]
                return (stack, logical)
            if "Fn::ImportValue" in value and isinstance(value["Fn::ImportValue"], str):
                exported = self.exports.get(value["Fn::ImportValue"])
                if exported is not None:
                    return self.resolve(*exported)
        return None

    def resources(self, kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for stack, body in self.bodies.items():
            for logical, resource in body.get("Resources", {}).items():
                if resource.get("Type") == kind:
                    yield stack, logical, resource.get("Properties", {})


def _folder(path: Path, manifest: dict[str, Any]) -> _Folder:
    bodies: dict[str, dict[str, Any]] = {}
    exports: dict[str, tuple[str, Any]] = {}
    for stack in manifest["stacks"]:
        if stack["templates"]["json"].startswith("../"):
            continue
        body = json.loads((path.parent / stack["templates"]["json"]).read_text(encoding="utf-8"))
        bodies[stack["name"]] = body
        for output in body.get("Outputs", {}).values():
            name = output.get("Export", {}).get("Name")
            if isinstance(name, str):
                exports[name] = (stack["name"], output["Value"])
    return _Folder(bodies, exports)


# --- the check --------------------------------------------------------------------------------


def check_output_quotas(manifests: Iterable[tuple[Path, dict[str, Any]]]) -> list[str]:
    """The gate's ``quotas`` step: ``check_quotas`` and the deployer roles' regions
    (``regions.check_regions``), over the same manifests."""
    manifests = list(manifests)
    return [*check_quotas(manifests), *check_regions(manifests)]


def check_quotas(manifests: Iterable[tuple[Path, dict[str, Any]]]) -> list[str]:
    """Every quota of ``QUOTAS`` against each folder's stacks. Problems as text naming the
    resource, the count, the quota's name, its default and its source."""
    problems: list[str] = []
    for path, manifest in manifests:
        folder = _folder(path, manifest)
        problems.extend(f"{path.parent.name}: {p}" for p in _load_balancers(folder))
        problems.extend(f"{path.parent.name}: {p}" for p in _security_groups(folder))
        problems.extend(f"{path.parent.name}: {p}" for p in _per_resource(folder))
        problems.extend(f"{path.parent.name}: {p}" for p in _service_connect(folder))
    return problems


def _load_balancers(folder: _Folder) -> Iterator[str]:
    listener_of: dict[Key, Key] = {}  # listener -> load balancer
    listeners: dict[Key, int] = defaultdict(int)
    certificates: dict[Key, int] = defaultdict(int)
    groups: dict[Key, set[Key]] = defaultdict(set)
    rules: dict[Key, int] = defaultdict(int)
    for stack, logical, props in folder.resources("AWS::ElasticLoadBalancingV2::Listener"):
        alb = folder.resolve(stack, props.get("LoadBalancerArn"))
        if alb is None:
            continue
        listener_of[(stack, logical)] = alb
        listeners[alb] += 1
        certificates[alb] += max(0, len(props.get("Certificates", [])) - 1)
        groups[alb] |= set(_forwarded(folder, stack, props.get("DefaultActions", [])))
    for stack, _, props in folder.resources("AWS::ElasticLoadBalancingV2::ListenerCertificate"):
        listener = folder.resolve(stack, props.get("ListenerArn"))
        if listener in listener_of:
            certificates[listener_of[listener]] += len(props.get("Certificates", []))
    for stack, logical, props in folder.resources("AWS::ElasticLoadBalancingV2::ListenerRule"):
        listener = folder.resolve(stack, props.get("ListenerArn"))
        alb = listener_of.get(listener) if listener else None
        if alb is None:
            yield f"{stack} {logical}: its listener is not one of this folder's load balancers'"
            continue
        rules[alb] += 1
        groups[alb] |= set(_forwarded(folder, stack, props.get("Actions", [])))
        yield from _rule(props, f"{stack} {logical}")
    balancers = sum(1 for _ in folder.resources("AWS::ElasticLoadBalancingV2::LoadBalancer"))
    if balancers > LOAD_BALANCERS_PER_REGION.default:
        yield LOAD_BALANCERS_PER_REGION.exceeded(balancers, "this folder's stacks")
    targets = _targets(folder)
    for alb in sorted(set(listener_of.values())):
        where = f"load balancer {alb[1]} of {alb[0]}"
        for quota, count in (
            (LISTENERS_PER_ALB, listeners[alb]),
            (CERTIFICATES_PER_ALB, certificates[alb]),
            (RULES_PER_ALB, rules[alb]),
            (TARGET_GROUPS_PER_ALB, len(groups[alb])),
            (TARGETS_PER_ALB, sum(targets.get(group, 0) for group in groups[alb])),
        ):
            if count > quota.default:
                yield quota.exceeded(count, where)


def _rule(props: dict[str, Any], where: str) -> Iterator[str]:
    """One listener rule's own quotas: condition values, wildcards, target groups per action."""
    values = [x for c in props.get("Conditions", []) for v in _condition_values(c) for x in v]
    if len(values) > CONDITION_VALUES_PER_RULE.default:
        yield CONDITION_VALUES_PER_RULE.exceeded(len(values), where)
    wildcards = sum(str(x).count("*") + str(x).count("?") for x in values)
    if wildcards > CONDITION_WILDCARDS_PER_RULE.default:
        yield CONDITION_WILDCARDS_PER_RULE.exceeded(wildcards, where)
    for action in props.get("Actions", []):
        tuples = action.get("ForwardConfig", {}).get("TargetGroups", [])
        if len(tuples) > TARGET_GROUPS_PER_ACTION.default:
            yield TARGET_GROUPS_PER_ACTION.exceeded(len(tuples), where)


def _forwarded(folder: _Folder, stack: str, actions: list[dict[str, Any]]) -> Iterator[Key]:
    for action in actions:
        for value in [action.get("TargetGroupArn")] + [
            t.get("TargetGroupArn") for t in action.get("ForwardConfig", {}).get("TargetGroups", [])
        ]:
            key = folder.resolve(stack, value) if value is not None else None
            if key is not None:
                yield key


def _condition_values(condition: dict[str, Any]) -> Iterator[list[Any]]:
    for key, config in condition.items():
        if key == "Values" and isinstance(config, list):
            yield config
        elif isinstance(config, dict) and isinstance(config.get("Values"), list):
            yield config["Values"]


def _targets(folder: _Folder) -> dict[Key, int]:
    """Each target group's most targets: the maximum task count of the ECS service registering in
    it (its scalable target's MaxCapacity, else its desired count). A blue/green service's two
    groups each get the maximum: during a release both colours run a full set."""
    maximum = _maximum_tasks(folder)
    counts: dict[Key, int] = {}
    for stack, logical, props in folder.resources("AWS::ECS::Service"):
        tasks = maximum.get((stack, logical), int(props.get("DesiredCount", 1)))
        for balancer in props.get("LoadBalancers", []):
            blue = folder.resolve(stack, balancer.get("TargetGroupArn"))
            if blue is not None:
                counts[blue] = tasks
        green = (stack, "GreenTargetGroup")
        if green[1] in folder.bodies[stack].get("Resources", {}):
            counts[green] = tasks
    return counts


def _service_of(resource_id: Any) -> str | None:
    """The ECS service logical ID a scalable target's ``service/<cluster>/<name>`` Join names."""
    text = json.dumps(resource_id)
    match = re.search(r'"Fn::GetAtt": \["(\w+)", "Name"\]', text)
    return match[1] if match else None


def _security_groups(folder: _Folder) -> Iterator[str]:
    inbound: dict[Key, int] = defaultdict(int)
    outbound: dict[Key, int] = defaultdict(int)
    for stack, logical, props in folder.resources("AWS::EC2::SecurityGroup"):
        key = (stack, logical)
        inbound[key] += sum(_weight(rule, "SourcePrefixListId") for rule in props.get("SecurityGroupIngress", []))
        # Without an inline egress rule the group gets CloudFormation's allow-all default: one rule.
        egress = props.get("SecurityGroupEgress")
        outbound[key] += sum(_weight(rule, "DestinationPrefixListId") for rule in egress) if egress else 1
    for kind, counter, prefix in (
        ("AWS::EC2::SecurityGroupIngress", inbound, "SourcePrefixListId"),
        ("AWS::EC2::SecurityGroupEgress", outbound, "DestinationPrefixListId"),
    ):
        for stack, _, props in folder.resources(kind):
            group = folder.resolve(stack, props.get("GroupId"))
            if group is not None:
                counter[group] += _weight(props, prefix)
    for quota, counter in ((INBOUND_RULES_PER_GROUP, inbound), (OUTBOUND_RULES_PER_GROUP, outbound)):
        for group, count in sorted(counter.items()):
            if count > quota.default:
                yield quota.exceeded(count, f"security group {group[1]} of {group[0]}")


def _weight(rule: dict[str, Any], prefix_key: str) -> int:
    return UNKNOWN_PREFIX_LIST_WEIGHT if rule.get(prefix_key) else 1


def _per_resource(folder: _Folder) -> Iterator[str]:
    for kind, path in INTERFACE_GROUPS.items():
        for stack, logical, props in folder.resources(kind):
            node: Any = props
            for step in path:
                node = node.get(step, {}) if isinstance(node, dict) else {}
            if isinstance(node, list) and len(node) > GROUPS_PER_INTERFACE.default:
                yield GROUPS_PER_INTERFACE.exceeded(len(node), f"{stack} {logical}")
    for stack, logical, props in folder.resources("AWS::CloudFront::Distribution"):
        behaviours = 1 + len(props.get("DistributionConfig", {}).get("CacheBehaviors", []))
        if behaviours > CACHE_BEHAVIORS_PER_DISTRIBUTION.default:
            yield CACHE_BEHAVIORS_PER_DISTRIBUTION.exceeded(behaviours, f"{stack} {logical}")
    services: dict[Key | str, int] = defaultdict(int)
    for stack, _, props in folder.resources("AWS::ECS::Service"):
        cluster = props.get("Cluster")
        services[folder.resolve(stack, cluster) or json.dumps(cluster, sort_keys=True)] += 1
    for cluster, count in services.items():
        if count > SERVICES_PER_CLUSTER.default:
            yield SERVICES_PER_CLUSTER.exceeded(count, f"cluster {cluster}")
    for stack, logical, props in folder.resources("AWS::CloudWatch::CompositeAlarm"):
        alarms = len(re.findall(r"\b(?:ALARM|OK|INSUFFICIENT_DATA)\(", json.dumps(props.get("AlarmRule"))))
        if alarms > ALARMS_PER_COMPOSITE_RULE.default:
            yield ALARMS_PER_COMPOSITE_RULE.exceeded(alarms, f"{stack} {logical}")


def _service_connect(folder: _Folder) -> Iterator[str]:
    """Cloud Map instances per backend (its tasks at most, twice while a rolling release runs both
    revisions), Service Connect services per namespace, and schedules."""
    maximum = _maximum_tasks(folder)
    per_namespace: dict[str, int] = defaultdict(int)
    for stack, logical, props in folder.resources("AWS::ECS::Service"):
        connect = props.get("ServiceConnectConfiguration", {})
        served = connect.get("Services", [])
        if not served:
            continue
        per_namespace[json.dumps(connect.get("Namespace"), sort_keys=True)] += len(served)
        percent = int(props.get("DeploymentConfiguration", {}).get("MaximumPercent", 200))
        tasks = maximum.get((stack, logical), int(props.get("DesiredCount", 1))) * percent // 100
        if tasks > INSTANCES_PER_CLOUD_MAP_SERVICE.default:
            yield INSTANCES_PER_CLOUD_MAP_SERVICE.exceeded(tasks, f"{stack} {logical}")
    for namespace, count in sorted(per_namespace.items()):
        if count > SERVICES_PER_NAMESPACE.default:
            yield SERVICES_PER_NAMESPACE.exceeded(count, f"namespace {namespace}")
    schedules = sum(1 for _ in folder.resources("AWS::Scheduler::Schedule"))
    if schedules > SCHEDULES_PER_REGION.default:
        yield SCHEDULES_PER_REGION.exceeded(schedules, "this folder's stacks")


def _maximum_tasks(folder: _Folder) -> dict[Key, int]:
    """Each ECS service's most tasks: its scalable target's MaxCapacity."""
    maximum: dict[Key, int] = {}
    for stack, _, props in folder.resources("AWS::ApplicationAutoScaling::ScalableTarget"):
        service = _service_of(props.get("ResourceId"))
        if service is not None:
            maximum[(stack, service)] = int(props.get("MaxCapacity", 0))
    return maximum
