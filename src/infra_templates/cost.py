"""What an environment costs before it is deployed: the fixed monthly cost of generated templates.

The estimate reads what the templates hold (resource counts, sizes, zones, desired counts, the
Fargate/Spot mix, Aurora's ACU floor or instance class, NAT gateways, load balancers, public IPv4
addresses, WAF web ACLs and rules, Container Insights, KMS keys, secrets, alarms, health checks)
and multiplies it with AWS list prices shipped as data in ``prices/aws.json`` (each price with its
AWS pricing page, price-list offer and the date it was read). "Fixed" means what runs whether or
not anyone uses the environment: 730 hours a month, no traffic, no stored data, no free tier, no
Savings Plans. What depends on use (data processed, requests, storage, logs, build minutes) is
listed by name with its unit price, never added to the figure: the figure is a floor, not a bill.

    estimate(stacks, prices)        -> Estimate     (stacks: name, region, template body)
    read_folder(Path("output/dev")) -> Estimate     (the folder's own stacks, from its manifest)
    report([...]) / compare(old, new) -> lines of text

Sources: AWS pricing pages named per price in ``prices/aws.json``; how ECS splits tasks between
capacity providers ("base" first, then by weight): Amazon ECS Developer Guide, "Amazon ECS capacity
provider strategies"; what Container Insights publishes: CloudWatch User Guide, "Amazon ECS
Container Insights metrics"; that ECS sends no metrics for a resource without running tasks:
Amazon ECS Developer Guide, "Amazon ECS CloudWatch metrics".
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).parent / "prices" / "aws.json"


PRICE_META = frozenset({"unit", "source", "checked", "note"})  # the keys of a price entry that are not regions


class CostError(Exception):
    """The estimate cannot be made: an unpriced region or instance class, an unreadable folder."""


# --- prices -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prices:
    """The price table: ``fixed`` and ``usage`` prices by key and region (USD), with their sources."""

    read_on: str
    hours: float
    fixed: Mapping[str, Mapping[str, Any]]
    usage: Mapping[str, Mapping[str, Any]]
    sources: Mapping[str, Mapping[str, str]]
    container_insights: Mapping[str, int]

    @classmethod
    def load(cls, path: Path = PRICES_FILE) -> Prices:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            read_on=data["read_on"],
            hours=float(data["hours_per_month"]),
            fixed=data["fixed"],
            usage=data["usage"],
            sources=data["sources"],
            container_insights=data["container_insights_metrics"],
        )

    @property
    def regions(self) -> list[str]:
        """Regions every fixed price covers."""
        sets = [set(entry) - PRICE_META for entry in self.fixed.values()]
        return sorted(set.intersection(*sets)) if sets else []

    def fixed_price(self, key: str, region: str) -> float:
        value = self._lookup(self.fixed, key, region)
        if not isinstance(value, int | float):
            raise CostError(f"price {key} for {region} is not a number in {PRICES_FILE.name}")
        return float(value)

    def instance_price(self, instance_class: str, region: str) -> float:
        table = self._lookup(self.fixed, "aurora_instance_hour", region)
        if instance_class not in table:
            raise CostError(
                f"no price for Aurora instance class {instance_class} in {region} in {PRICES_FILE.name}; "
                f"priced: {', '.join(sorted(table))} (add it with its source and date)"
            )
        return float(table[instance_class])

    def usage_price(self, key: str, region: str) -> float:
        return float(self._lookup(self.usage, key, region))

    def checked(self, key: str, region: str) -> Mapping[str, str]:
        """How the price ``key`` for ``region`` was confirmed: ``status`` ("published": read on the AWS page or
        Price List file ``url`` on ``read_on``; "consistent": a Price List row or AWS bill quoted publicly agrees;
        "unconfirmed": ``why`` says what was found). The table's own ``checked`` entry, by Region or "*"."""
        entry = self.fixed.get(key) or self.usage[key]
        checked = entry.get("checked", {})
        found = checked.get(region, checked.get("*"))
        if found is None:
            return {"status": "unconfirmed", "why": f"no 'checked' entry for {region} in {PRICES_FILE.name}"}
        return found

    def _lookup(self, table: Mapping[str, Mapping[str, Any]], key: str, region: str) -> Any:
        entry = table[key]
        if region not in entry:
            raise CostError(
                f"no prices for region {region} in {PRICES_FILE.name} ({key} is priced for "
                f"{', '.join(r for r in sorted(entry) if r not in PRICE_META)}): add the region's prices, with their "
                "source and date, to estimate stacks there"
            )
        return entry[region]


@cache
def default_prices() -> Prices:
    return Prices.load()


# --- the estimate ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StackInput:
    """One stack to price: its name, its region and its template (the JSON body as a dict)."""

    name: str
    region: str
    body: Mapping[str, Any]


@dataclass(frozen=True)
class Line:
    """One fixed monthly cost: ``quantity`` units of ``unit`` at ``unit_price`` USD each."""

    stack: str
    item: str
    quantity: float
    unit: str
    unit_price: float
    keys: tuple[str, ...] = ()  # the prices/aws.json "fixed" keys the unit price comes from

    @property
    def monthly(self) -> float:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class Usage:
    """A usage-priced item: not in the figure; its unit price, and the stacks that hold it."""

    item: str
    unit: str
    unit_price: float
    region: str
    stacks: tuple[str, ...]


@dataclass(frozen=True)
class Estimate:
    """The fixed monthly cost of one folder's stacks, line by line, and what comes on top with use."""

    label: str
    lines: tuple[Line, ...]
    usage: tuple[Usage, ...]
    stacks: tuple[tuple[str, str], ...]  # (name, region) in deploy order
    read_on: str
    unpriced: tuple[str, ...] = ()  # resource types the table does not know: "TYPE (stack)"

    @property
    def total(self) -> float:
        return sum(line.monthly for line in self.lines)

    def by_stack(self) -> dict[str, float]:
        totals = {name: 0.0 for name, _ in self.stacks}
        for line in self.lines:
            totals[line.stack] += line.monthly
        return totals

    @property
    def regions(self) -> list[str]:
        return sorted({region for _, region in self.stacks})

    def unconfirmed(self, prices: Prices | None = None) -> list[tuple[str, str, str]]:
        """(price key, Region, why) of each price in the figure that is not confirmed against an AWS page or
        Price List file (status other than "published"), once each, sorted."""
        prices = prices or default_prices()
        region_of = dict(self.stacks)
        found: set[tuple[str, str, str]] = set()
        for line in self.lines:
            region = region_of[line.stack]
            for key in line.keys:
                checked = prices.checked(key, region)
                if checked.get("status") != "published":
                    why = checked.get("why", checked.get("note", ""))
                    found.add((key, region, f"{checked.get('status')}: {why}"))
        return sorted(found)


# Resource types that cost nothing by themselves (their use may: see USAGE_OF). Source: each
# service's pricing page: no charge for VPCs, subnets, route tables, security groups, IAM, ECS
# (the tasks are charged, the service, cluster and task definition are not), target groups and
# listeners (part of the load balancer's hour), EventBridge rules on AWS service events, CodeDeploy
# to ECS, key aliases, topic/bucket/queue policies.
FREE_TYPES = frozenset(
    {
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::Backup::BackupPlan",
        "AWS::Backup::BackupSelection",
        "AWS::CloudFormation::CustomResource",  # a Lambda-backed custom resource: the function is priced
        "AWS::CloudFront::OriginAccessControl",
        # A CloudFront VPC origin (the private way in to an internal load balancer) has no charge of its own:
        # CloudFront bills the distribution's requests and data transfer (CloudFront pricing page; "Introducing
        # CloudFront Virtual Private Cloud (VPC) Origins", AWS Networking & Content Delivery blog). Not found as a
        # stated "no charge" on a stored pricing page: verify with the page before relying on it.
        "AWS::CloudFront::VpcOrigin",
        "AWS::CloudFront::ResponseHeadersPolicy",
        "AWS::CodeDeploy::Application",
        "AWS::CodeDeploy::DeploymentGroup",
        "AWS::EC2::FlowLog",
        "AWS::EC2::InternetGateway",
        "AWS::EC2::Route",
        "AWS::EC2::RouteTable",
        "AWS::EC2::SecurityGroup",
        "AWS::EC2::SecurityGroupEgress",
        "AWS::EC2::SecurityGroupIngress",
        "AWS::EC2::Subnet",
        "AWS::EC2::SubnetRouteTableAssociation",
        "AWS::EC2::VPC",
        "AWS::EC2::VPCGatewayAttachment",
        "AWS::ECR::ReplicationConfiguration",
        "AWS::ECR::RepositoryCreationTemplate",
        "AWS::ECS::TaskDefinition",
        "AWS::ElasticLoadBalancingV2::Listener",
        "AWS::ElasticLoadBalancingV2::ListenerRule",
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        "AWS::Events::Rule",
        "AWS::IAM::ManagedPolicy",
        "AWS::IAM::Policy",
        "AWS::IAM::Role",
        "AWS::KMS::Alias",
        "AWS::Lambda::EventInvokeConfig",
        "AWS::Lambda::Permission",
        "AWS::RDS::DBClusterParameterGroup",
        "AWS::RDS::DBSubnetGroup",
        "AWS::RDS::GlobalCluster",
        "AWS::Route53::RecordSet",
        "AWS::S3::BucketPolicy",
        "AWS::SNS::Topic",
        "AWS::SNS::TopicPolicy",
        "AWS::SecretsManager::RotationSchedule",  # the secret and its rotation function are priced
        "AWS::SecretsManager::SecretTargetAttachment",
        "AWS::SQS::QueuePolicy",
        "AWS::WAFv2::LoggingConfiguration",
        "AWS::WAFv2::WebACLAssociation",
    }
)

# What a resource costs with use: the usage price keys (prices/aws.json, "usage") it brings.
USAGE_OF: dict[str, tuple[str, ...]] = {
    "AWS::EC2::NatGateway": ("nat_gateway_gb",),
    "AWS::ElasticLoadBalancingV2::LoadBalancer": ("alb_lcu_hour",),
    "AWS::RDS::DBCluster": ("aurora_storage_gb_month", "aurora_io_million", "aurora_backup_gb_month"),
    "AWS::Logs::LogGroup": ("logs_ingest_gb", "logs_store_gb_month"),
    "AWS::WAFv2::WebACL": ("waf_requests_million",),
    "AWS::S3::Bucket": ("s3_standard_gb_month",),
    "AWS::CloudFront::Distribution": ("cloudfront_gb_out",),
    "AWS::ECR::Repository": ("ecr_storage_gb_month",),
    "AWS::CodeBuild::Project": ("codebuild_general1_small_minute",),
    "AWS::Lambda::Function": ("lambda_gb_second",),
    # AWS Backup bills an Aurora snapshot in a vault as Aurora snapshot storage ("AWS Backup
    # pricing": Amazon Aurora, warm storage), the same per GB-month; a DR copy adds inter-region transfer.
    "AWS::Backup::BackupVault": ("aurora_backup_gb_month",),
    "AWS::SNS::Subscription": ("sns_email_100k",),
    "AWS::SQS::Queue": ("sqs_million",),
    "AWS::SES::EmailIdentity": ("ses_thousand",),
    "AWS::CodeCommit::Repository": ("codecommit_user_month",),
}

ITEM_NAMES = {
    "aurora_acu_hour_above_floor": "Aurora Serverless v2 capacity above the floor",
    "fargate_vcpu_hour_scaled": "Fargate tasks beyond the desired count",
    "nat_gateway_gb": "NAT gateway data processed",
    "interface_endpoint_gb": "interface endpoint data processed",
    "alb_lcu_hour": "load balancer capacity units",
    "aurora_storage_gb_month": "Aurora storage",
    "aurora_io_million": "Aurora I/O requests",
    "aurora_backup_gb_month": "Aurora backup storage",
    "logs_ingest_gb": "CloudWatch Logs ingestion",
    "logs_store_gb_month": "CloudWatch Logs storage",
    "waf_requests_million": "WAF requests inspected",
    "s3_standard_gb_month": "S3 storage",
    "cloudfront_gb_out": "CloudFront data out",
    "ecr_storage_gb_month": "ECR image storage",
    "codepipeline_v2_action_minute": "CodePipeline V2 action minutes",
    "codebuild_general1_small_minute": "CodeBuild minutes",
    "lambda_gb_second": "Lambda compute",
    "sns_email_100k": "SNS e-mail notifications",
    "sqs_million": "SQS requests",
    "ses_thousand": "SES e-mails",
    "codecommit_user_month": "CodeCommit users",
    "container_insights_enhanced_metric_month": "Container Insights per-task and per-container metrics",
    "performance_insights_vcpu_month": "Performance Insights retention beyond 7 days",
}


@dataclass
class _Folder:
    """What a stack's pricing needs from the other stacks of its folder."""

    stacks: Sequence[StackInput]
    exports: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for stack in self.stacks:
            for output in stack.body.get("Outputs", {}).values():
                name = output.get("Export", {}).get("Name")
                if isinstance(name, str):
                    self.exports[name] = output["Value"]

    def resources(self, kind: str) -> list[dict[str, Any]]:
        return [r for s in self.stacks for r in s.body.get("Resources", {}).values() if r["Type"] == kind]

    def list_length(self, value: Any) -> int:
        """How many items a property's list holds: a literal list, or ``Fn::Split`` of a ``Fn::Join``
        another stack of the folder exports."""
        if isinstance(value, list):
            return len(value)
        if isinstance(value, dict) and "Fn::Split" in value:
            source = value["Fn::Split"][1]
            if isinstance(source, dict) and "Fn::ImportValue" in source:
                exported = self.exports.get(source["Fn::ImportValue"])
                if isinstance(exported, dict) and "Fn::Join" in exported:
                    return len(exported["Fn::Join"][1])
        raise CostError(f"cannot count the items of {json.dumps(value)}: not a list nor an export of this folder")


def estimate(label: str, stacks: Sequence[StackInput], prices: Prices | None = None) -> Estimate:
    """The fixed monthly cost of ``stacks`` (the own stacks of one folder, in deploy order).

    Raises CostError for a region or an instance class ``prices`` does not cover.
    """
    prices = prices or default_prices()
    folder = _Folder(stacks)
    lines: list[Line] = []
    usage: dict[tuple[str, str], set[str]] = {}
    unpriced: list[str] = []
    for stack in stacks:
        pricer = _Pricer(prices, stack, folder)
        for logical_id, resource in sorted(stack.body.get("Resources", {}).items()):
            kind = resource["Type"]
            handler = HANDLERS.get(kind)
            if handler is not None:
                handler(pricer, logical_id, resource.get("Properties", {}))
            elif kind not in FREE_TYPES and kind not in USAGE_OF:
                unpriced.append(f"{kind} ({stack.name})")  # listed, never silently free
            for key in USAGE_OF.get(kind, ()):
                pricer.use(key)
        lines.extend(_merged(pricer.lines))
        for key in pricer.usage_keys:
            usage.setdefault((key, stack.region), set()).add(stack.name)
    usage_items = tuple(
        Usage(
            item=ITEM_NAMES[key],
            unit=prices.usage[key]["unit"],
            unit_price=prices.usage_price(key, region),
            region=region,
            stacks=tuple(sorted(names)),
        )
        for (key, region), names in sorted(usage.items())
    )
    return Estimate(
        label=label,
        lines=tuple(lines),
        usage=usage_items,
        stacks=tuple((s.name, s.region) for s in stacks),
        read_on=prices.read_on,
        unpriced=tuple(sorted(set(unpriced))),
    )


def _merged(lines: Sequence[Line]) -> list[Line]:
    """Lines of the same item and price summed into one (ten alarms: one line of 10)."""
    merged: dict[tuple[str, str, float], Line] = {}
    for line in lines:
        key = (line.item, line.unit, line.unit_price)
        seen = merged.get(key)
        merged[key] = (
            line
            if seen is None
            else Line(line.stack, line.item, seen.quantity + line.quantity, line.unit, line.unit_price, line.keys)
        )
    return list(merged.values())


class _Pricer:
    """Collects one stack's lines: ``hourly`` and ``monthly`` prices from the fixed table."""

    def __init__(self, prices: Prices, stack: StackInput, folder: _Folder) -> None:
        self.prices, self.stack, self.folder = prices, stack, folder
        self.lines: list[Line] = []
        self.usage_keys: set[str] = set()
        # Every fixed price of the region is looked up once, so an unpriced region fails on any stack.
        prices.fixed_price("nat_gateway_hour", stack.region)

    @property
    def resources(self) -> Mapping[str, Any]:
        return self.stack.body.get("Resources", {})

    def price(self, key: str) -> float:
        return self.prices.fixed_price(key, self.stack.region)

    def add(self, item: str, quantity: float, key: str, unit_price: float, also: tuple[str, ...] = ()) -> None:
        if quantity:
            unit = self.prices.fixed[key]["unit"]
            self.lines.append(Line(self.stack.name, item, quantity, unit, unit_price, (key, *also)))

    def hourly(self, item: str, count: float, key: str, price: float | None = None, also: tuple[str, ...] = ()) -> None:
        """``count`` things billed by the hour, all month (``also``: further price keys ``price`` was made with)."""
        self.add(item, count * self.prices.hours, key, self.price(key) if price is None else price, also)

    def monthly(self, item: str, count: float, key: str) -> None:
        self.add(item, count, key, self.price(key))

    def use(self, key: str) -> None:
        self.usage_keys.add(key)


def _nat_gateway(p: _Pricer, logical_id: str, props: Mapping[str, Any]) -> None:
    if props.get("ConnectivityType", "public") == "public":
        p.hourly(f"NAT gateway {logical_id}", 1, "nat_gateway_hour")


def _eip(p: _Pricer, logical_id: str, props: Mapping[str, Any]) -> None:
    p.hourly(f"public IPv4 address {logical_id}", 1, "public_ipv4_hour")


def _load_balancer(p: _Pricer, logical_id: str, props: Mapping[str, Any]) -> None:
    if props.get("Type", "application") != "application":
        raise CostError(f"{p.stack.name}: {logical_id} is a {props['Type']} load balancer: not priced")
    p.hourly(f"load balancer {logical_id}", 1, "alb_hour")
    # Scheme defaults to internet-facing; an internal load balancer's nodes have private addresses only, so it
    # holds no public IPv4 address (AWS::ElasticLoadBalancingV2::LoadBalancer, Scheme; Elastic Load Balancing
    # User Guide, "Internet-facing and internal load balancers"). Read from the template, never assumed.
    scheme = props.get("Scheme", "internet-facing")
    address_type = props.get("IpAddressType", "ipv4")
    if not isinstance(scheme, str) or not isinstance(address_type, str):
        raise CostError(
            f"{p.stack.name}: {logical_id}: cannot price a load balancer whose Scheme or IpAddressType is not a "
            f"literal ({json.dumps(scheme)}, {json.dumps(address_type)})"
        )
    if scheme == "internet-facing" and address_type != "dualstack-without-public-ipv4":
        # An internet-facing ALB holds a public IPv4 address in each of its subnets (more under load).
        zones = p.folder.list_length(props.get("Subnets", props.get("SubnetMappings", [])))
        p.hourly(f"load balancer {logical_id}: public IPv4 addresses", zones, "public_ipv4_hour")


def _endpoint(p: _Pricer, logical_id: str, props: Mapping[str, Any]) -> None:
    if props.get("VpcEndpointType", "Gateway") == "Interface":
        zones = p.folder.list_length(props.get("SubnetIds", []))
        p.hourly(f"interface endpoint {logical_id} (one per zone)", zones, "interface_endpoint_hour")
        p.use("interface_endpoint_gb")


def fargate_split(desired: int, strategy: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    """(on-demand tasks, Spot tasks) of ``desired`` tasks under a capacity provider strategy: the
    provider with a ``Base`` takes its base first, the rest goes by ``Weight`` (on average: ECS
    places whole tasks). Source: Amazon ECS Developer Guide, "Amazon ECS capacity provider strategies"."""
    base = {item["CapacityProvider"]: int(item.get("Base", 0)) for item in strategy}
    weight = {item["CapacityProvider"]: int(item.get("Weight", 0)) for item in strategy}
    on_demand = float(min(desired, base.get("FARGATE", 0)))
    spot = float(min(desired - on_demand, base.get("FARGATE_SPOT", 0)))
    rest = desired - on_demand - spot
    total_weight = weight.get("FARGATE", 0) + weight.get("FARGATE_SPOT", 0)
    if rest and total_weight:
        on_demand += rest * weight.get("FARGATE", 0) / total_weight
        spot += rest * weight.get("FARGATE_SPOT", 0) / total_weight
    return on_demand, spot


def _service(p: _Pricer, logical_id: str, props: Mapping[str, Any]) -> None:
    desired = int(props.get("DesiredCount", 1))
    task = _referenced(p, props.get("TaskDefinition"), "AWS::ECS::TaskDefinition")
    vcpu = int(task["Cpu"]) / 1024
    memory = int(task["Memory"]) / 1024
    if "CapacityProviderStrategy" in props:
        strategy = props["CapacityProviderStrategy"]
    elif props.get("LaunchType") == "FARGATE":
        strategy = [{"CapacityProvider": "FARGATE", "Base": 0, "Weight": 1}]
    else:
        clusters = p.folder.resources("AWS::ECS::Cluster")
        strategy = clusters[0]["Properties"].get("DefaultCapacityProviderStrategy", []) if clusters else []
    on_demand, spot = fargate_split(desired, strategy)
    name = props.get("ServiceName", logical_id)
    factor = p.price("fargate_spot_factor")
    for label, tasks, scale, also in (
        ("Fargate", on_demand, 1.0, ()),
        ("Fargate Spot", spot, factor, ("fargate_spot_factor",)),
    ):
        if tasks:
            what = f"service {name}: {_number(round(tasks, 4))} task(s) on {label}"
            vcpu_price, gb_price = p.price("fargate_vcpu_hour") * scale, p.price("fargate_gb_hour") * scale
            p.hourly(f"{what}, {_number(vcpu)} vCPU", tasks * vcpu, "fargate_vcpu_hour", vcpu_price, also)
            p.hourly(f"{what}, {_number(memory)} GB", tasks * memory, "fargate_gb_hour", gb_price, also)
    p.use("fargate_vcpu_hour_scaled")
    network = props.get("NetworkConfiguration", {}).get("AwsvpcConfiguration", {})
    if network.get("AssignPublicIp") == "ENABLED":
        p.hourly(f"service {name}: a public IPv4 address per task", desired, "public_ipv4_hour")


def _referenced(p: _Pricer, value: Any, kind: str) -> Mapping[str, Any]:
    if isinstance(value, dict) and "Ref" in value and value["Ref"] in p.resources:
        resource = p.resources[value["Ref"]]
        if resource["Type"] == kind:
            return resource.get("Properties", {})
    if isinstance(value, str):  # a task definition named by its family (blue/green services)
        for resource in p.resources.values():
            if resource["Type"] == kind and resource.get("Properties", {}).get("Family") == value:
                return resource["Properties"]
    raise CostError(f"{p.stack.name}: expected a Ref to a {kind} of the same template, found {json.dumps(value)}")


def _db_instance(p: _Pricer, logical_id: str, props: Mapping[str, Any]) -> None:
    instance_class = props["DBInstanceClass"]
    if instance_class == "db.serverless":
        cluster = _referenced(p, props.get("DBClusterIdentifier"), "AWS::RDS::DBCluster")
        floor = float(cluster.get("ServerlessV2ScalingConfiguration", {}).get("MinCapacity", 0.5))
        # At 0 ACU the instance pauses when idle and costs nothing for compute while paused.
        p.hourly(f"database {logical_id}: {_number(floor)} ACU floor", floor, "aurora_acu_hour")
        p.use("aurora_acu_hour_above_floor")
    else:
        p.hourly(
            f"database {logical_id}: {instance_class}",
            1,
            "aurora_instance_hour",
            p.prices.instance_price(instance_class, p.stack.region),
        )
    if int(props.get("PerformanceInsightsRetentionPeriod", 7)) > 7:
        p.use("performance_insights_vcpu_month")


def _db_cluster(p: _Pricer, logical_id: str, props: Mapping[str, Any]) -> None:
    if props.get("ManageMasterUserPassword"):
        p.monthly(f"database {logical_id}: its RDS-managed password secret", 1, "secret_month")


def _secret(p: _Pricer, logical_id: str, props: Mapping[str, Any]) -> None:
    replicas = len(props.get("ReplicaRegions", []))
    p.monthly(
        f"secret {logical_id}" + (f" and {replicas} replica(s)" if replicas else ""), 1 + replicas, "secret_month"
    )


def _kms_key(p: _Pricer, logical_id: str, props: Mapping[str, Any]) -> None:
    p.monthly(f"KMS key {logical_id}", 1, "kms_key_month")


def _alarm(p: _Pricer, logical_id: str, props: Mapping[str, Any]) -> None:
    # A metric-math alarm pays for each metric it reads (CloudWatch pricing, Alarms).
    metrics = props.get("Metrics")
    count = sum(1 for m in metrics if "MetricStat" in m) if metrics else 1
    p.monthly("alarms (metrics they watch)", count, "alarm_metric_month")


def _composite_alarm(p: _Pricer, logical_id: str, props: Mapping[str, Any]) -> None:
    p.monthly("composite alarms", 1, "composite_alarm_month")


def _dashboard(p: _Pricer, logical_id: str, props: Mapping[str, Any]) -> None:
    p.monthly(f"dashboard {logical_id}", 1, "dashboard_month")


def _web_acl(p: _Pricer, logical_id: str, props: Mapping[str, Any]) -> None:
    p.monthly(f"WAF web ACL {logical_id}", 1, "waf_web_acl_month")
    p.monthly(f"WAF web ACL {logical_id}: rules and rule groups", len(props.get("Rules", [])), "waf_rule_month")


def _health_check(p: _Pricer, logical_id: str, props: Mapping[str, Any]) -> None:
    config = props.get("HealthCheckConfig", {})
    kind = config.get("Type", "HTTP")
    features = sum(
        (
            kind.startswith("HTTPS"),
            kind.endswith("_STR_MATCH"),
            int(config.get("RequestInterval", 30)) == 10,
            bool(config.get("MeasureLatency")),
        )
    )
    p.monthly(f"health check {logical_id}", 1, "health_check_month")
    p.monthly(f"health check {logical_id}: optional features", features, "health_check_feature_month")


def _cluster(p: _Pricer, logical_id: str, props: Mapping[str, Any]) -> None:
    settings = {s["Name"]: s["Value"] for s in props.get("ClusterSettings", [])}
    mode = settings.get("containerInsights", "disabled")
    if mode == "disabled":
        return
    services = len(p.folder.resources("AWS::ECS::Service"))
    counts = p.prices.container_insights
    metrics = counts["per_cluster"] + services * (counts["per_service"] + counts["per_task_family"])
    p.monthly(f"Container Insights ({mode}): cluster and {services} service(s)", metrics, "custom_metric_month")
    if mode == "enhanced":
        p.use("container_insights_enhanced_metric_month")


def _pipeline(p: _Pricer, logical_id: str, props: Mapping[str, Any]) -> None:
    if props.get("PipelineType", "V1") == "V2":
        p.use("codepipeline_v2_action_minute")
    else:
        raise CostError(f"{p.stack.name}: {logical_id} is a V1 pipeline: not priced (V2 is)")


HANDLERS = {
    "AWS::EC2::NatGateway": _nat_gateway,
    "AWS::EC2::EIP": _eip,
    "AWS::ElasticLoadBalancingV2::LoadBalancer": _load_balancer,
    "AWS::EC2::VPCEndpoint": _endpoint,
    "AWS::ECS::Service": _service,
    "AWS::ECS::Cluster": _cluster,
    "AWS::RDS::DBInstance": _db_instance,
    "AWS::RDS::DBCluster": _db_cluster,
    "AWS::SecretsManager::Secret": _secret,
    "AWS::KMS::Key": _kms_key,
    "AWS::CloudWatch::Alarm": _alarm,
    "AWS::CloudWatch::CompositeAlarm": _composite_alarm,
    "AWS::CloudWatch::Dashboard": _dashboard,
    "AWS::WAFv2::WebACL": _web_acl,
    "AWS::Route53::HealthCheck": _health_check,
    "AWS::CodePipeline::Pipeline": _pipeline,
}


# --- reading written output ------------------------------------------------------------------


def own_stacks(manifest: Mapping[str, Any], folder: str) -> list[Mapping[str, Any]]:
    """The manifest's stacks whose templates live in ``folder`` itself (not the shared ones)."""
    own = []
    for stack in manifest["stacks"]:
        where = posixpath.normpath(posixpath.join(folder, stack["templates"]["json"]))
        if posixpath.dirname(where) == folder:
            own.append(stack)
    return own


def folder_estimate(
    manifest: Mapping[str, Any], templates: Mapping[str, Mapping[str, Any]], folder: str, prices: Prices | None = None
) -> Estimate:
    """The estimate of a folder's own stacks, from its manifest and the templates by stack name."""
    stacks = [StackInput(s["name"], s["region"], templates[s["name"]]) for s in own_stacks(manifest, folder)]
    return estimate(folder, stacks, prices)


def read_folder(path: Path, prices: Prices | None = None) -> Estimate:
    """The estimate of ``path`` (e.g. ``output/dev``), from its manifest.json and JSON templates."""
    manifest_file = path / "manifest.json"
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        templates = {
            s["name"]: json.loads((path / s["templates"]["json"]).read_text(encoding="utf-8"))
            for s in own_stacks(manifest, path.name)
        }
    except (OSError, ValueError, KeyError) as error:
        raise CostError(f"cannot read {path}/: {error}; run `make templates` first") from error
    return folder_estimate(manifest, templates, path.name, prices)


def read_output(
    output: Path, names: Iterable[str] | None = None, prices: Prices | None = None, missing_ok: bool = False
) -> list[Estimate]:
    """Estimates of ``output/<name>/`` for each name, or of every folder with a manifest.json.

    With ``missing_ok`` (the old side of a comparison) a named folder that is not there is skipped,
    and an output without any folder gives no estimates: everything in it is new."""
    folders = [output / n for n in names] if names else sorted(p.parent for p in output.glob("*/manifest.json"))
    if missing_ok:
        return [read_folder(folder, prices) for folder in folders if (folder / "manifest.json").is_file()]
    if not folders:
        raise CostError(f"no manifest.json under {output}/: run `make templates` first")
    return [read_folder(folder, prices) for folder in folders]


# --- text ------------------------------------------------------------------------------------


def money(amount: float) -> str:
    return f"${amount:,.2f}"


def _number(value: float) -> str:
    return f"{value:g}"


def summary_line(estimate: Estimate) -> str:
    """One sentence for DEPLOY.md: the figure, the prices' date, what is not in it."""
    return (
        f"**What it costs:** about {money(estimate.total)} a month fixed (730 hours, no traffic, no stored data) "
        f"at AWS list prices for {', '.join(estimate.regions)} read on {estimate.read_on}. Use comes on top: "
        f"{len(estimate.usage)} usage-priced items (data processed, requests, storage, logs), listed with their "
        "unit prices by `make cost`."
    )


def report(estimates: Sequence[Estimate], detail: bool = True) -> list[str]:
    """A table of every folder's fixed monthly cost, then each folder by stack, item and usage price."""
    prices = default_prices()
    out = [
        f"Fixed monthly cost at AWS list prices read on {prices.read_on} ({_number(prices.hours)} hours, no traffic, "
        "no stored data, no free tier): a floor, not a bill.",
        "",
        f"  {'folder':<12} {'regions':<36} {'stacks':>6} {'fixed/month':>12}",
    ]
    for e in estimates:
        out.append(f"  {e.label:<12} {', '.join(e.regions):<36} {len(e.stacks):>6} {money(e.total):>12}")
    if not detail:
        return out
    for e in estimates:
        out += ["", f"{e.label}: {money(e.total)} a month fixed", ""]
        totals = e.by_stack()
        for name, region in e.stacks:
            out.append(f"  {name:<40} {region:<14} {money(totals[name]):>10}")
            out.extend(
                f"      {line.item}: {_number(round(line.quantity, 4))} x {money_unit(line.unit_price)} "
                f"({line.unit}) = {money(line.monthly)}"
                for line in e.lines
                if line.stack == name
            )
        if e.usage:
            out += ["", f"  Not in the figure, priced by use ({e.label}):"]
            out.extend(
                f"    {u.item}: {money_unit(u.unit_price)} per {u.unit} ({u.region}; {', '.join(u.stacks)})"
                for u in e.usage
            )
        unconfirmed = e.unconfirmed(prices)
        if unconfirmed:
            out += [
                "",
                f"  Prices in the figure not confirmed against an AWS pricing page or Price List file ({e.label}):",
            ]
            out.extend(f"    {key} ({region}): {why}" for key, region, why in unconfirmed)
        if e.unpriced:
            out += ["", f"  Not priced (unknown to prices/aws.json): {', '.join(e.unpriced)}"]
    return out


def money_unit(price: float) -> str:
    """A unit price with the digits it needs: $0.048, $0.0000166667, $5.00."""
    return f"${price:,.2f}" if price >= 1 else f"${price:.10f}".rstrip("0")


def compare(old: Sequence[Estimate], new: Sequence[Estimate]) -> list[str]:
    """What a change costs a month: per folder and per stack, new minus old (only what differs)."""
    before = {e.label: e for e in old}
    after = {e.label: e for e in new}
    out = [f"What the change costs a month (fixed, list prices read on {default_prices().read_on}):", ""]
    changed = False
    for label in sorted(set(before) | set(after)):
        b = before[label].by_stack() if label in before else {}
        a = after[label].by_stack() if label in after else {}
        total = sum(a.values()) - sum(b.values())
        rows = [(name, a.get(name, 0.0) - b.get(name, 0.0)) for name in sorted(set(a) | set(b))]
        rows = [(name, delta) for name, delta in rows if abs(delta) >= 0.005]
        if not rows:
            out.append(f"  {label:<12} no change ({money(sum(a.values()))})")
            continue
        changed = True
        out.append(f"  {label:<12} {_signed(total)} ({money(sum(b.values()))} -> {money(sum(a.values()))})")
        out.extend(f"      {name:<40} {_signed(delta)}" for name, delta in rows)
    if not changed:
        out += ["", "No change in the fixed monthly cost."]
    return out


def _signed(amount: float) -> str:
    return f"{'+' if amount >= 0 else '-'}{money(abs(amount))}"
