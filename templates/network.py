"""Network layer: VPC over 2-3 zones; public, private (egress through NAT) and isolated data subnets
per zone; internet and NAT gateways; a route table per tier and zone; flow logs; VPC endpoints."""

from __future__ import annotations

import awacs.ec2 as awsec2
import awacs.logs as awslogs
from troposphere import GetAtt, Join, Ref, Sub, Tags, Template, cloudformation, ec2

from infra_templates import constructs, iam
from infra_templates.config import Environment
from infra_templates.layer import LayerContext, Zone
from templates.contracts import Keys, Network

TIER_LABELS = {"public": "Public", "private": "Private", "data": "Data"}

# A runtime cfn-lint (E2531) lists as supported; inline (ZipFile) Python code may import cfnresponse
# (AWS: "cfn-response module", CloudFormation User Guide).

# Security Hub EC2.2 ("VPC default security groups should not allow inbound or outbound traffic"):
# CloudFormation has no property for the default group's rules, so this function revokes them once,
# on create and on update (a new VPC has a new default group). On delete it does nothing: the group
# stays closed, or goes with its VPC. The AWS CDK's `restrictDefaultSecurityGroup` does the same.
CLOSER_CODE = """\
import boto3
import cfnresponse


def handler(event, context):
    group = event["ResourceProperties"]["GroupId"]
    try:
        if event["RequestType"] in ("Create", "Update"):
            ec2 = boto3.client("ec2")
            found = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]
            if found["IpPermissions"]:
                ec2.revoke_security_group_ingress(GroupId=group, IpPermissions=found["IpPermissions"])
            if found["IpPermissionsEgress"]:
                ec2.revoke_security_group_egress(GroupId=group, IpPermissions=found["IpPermissionsEgress"])
        cfnresponse.send(event, context, cfnresponse.SUCCESS, {}, group)
    except Exception as error:  # CloudFormation must hear of any failure, or it waits
        print(repr(error))
        cfnresponse.send(event, context, cfnresponse.FAILED, {}, group, reason=repr(error)[:200])
"""


def build(env: Environment) -> Template:
    ctx = LayerContext(env, "network")
    net = env.network
    t = ctx.new_template(
        f"VPC over {len(ctx.zones)} zones with public, private and isolated data subnets, "
        f"NAT ({net.nat_gateways}), flow logs and VPC endpoints"
    )
    vpc = t.add_resource(
        ec2.VPC(
            "Vpc",
            CidrBlock=str(net.cidr),
            EnableDnsSupport=True,
            EnableDnsHostnames=True,
            Tags=Tags(Name=ctx.stack_name),
        )
    )
    igw = t.add_resource(ec2.InternetGateway("InternetGateway", Tags=Tags(Name=ctx.stack_name)))
    attachment = t.add_resource(
        ec2.VPCGatewayAttachment("InternetGatewayAttachment", VpcId=Ref(vpc), InternetGatewayId=Ref(igw))
    )

    subnets = {tier: [_subnet(t, ctx, vpc, zone, tier) for zone in ctx.zones] for tier in TIER_LABELS}

    nat_zones = ctx.zones if net.nat_gateways == "per-zone" else ctx.zones[:1]
    nats = [_nat_gateway(t, ctx, zone, subnets["public"][zone.index], attachment) for zone in nat_zones]

    route_tables: dict[str, list[ec2.RouteTable]] = {tier: [] for tier in TIER_LABELS}
    for zone in ctx.zones:
        public = _route_table(t, ctx, vpc, zone, tier="public", subnet=subnets["public"][zone.index])
        t.add_resource(
            ec2.Route(
                f"PublicDefaultRoute{zone.letter}",
                DependsOn=[attachment.title],
                RouteTableId=Ref(public),
                DestinationCidrBlock="0.0.0.0/0",
                GatewayId=Ref(igw),
            )
        )
        private = _route_table(t, ctx, vpc, zone, tier="private", subnet=subnets["private"][zone.index])
        nat = nats[zone.index] if len(nats) > 1 else nats[0]
        t.add_resource(
            ec2.Route(
                f"PrivateDefaultRoute{zone.letter}",
                RouteTableId=Ref(private),
                DestinationCidrBlock="0.0.0.0/0",
                NatGatewayId=Ref(nat),
            )
        )
        # The data tier's table has only the implicit local route: nothing there reaches the internet.
        data = _route_table(t, ctx, vpc, zone, tier="data", subnet=subnets["data"][zone.index])
        route_tables["public"].append(public)
        route_tables["private"].append(private)
        route_tables["data"].append(data)

    _flow_logs(t, ctx, vpc)
    _close_default_security_group(t, ctx, vpc)
    _endpoints(t, ctx, vpc, subnets["private"], route_tables["private"])

    ctx.export(t, Network.VPC_ID, Ref(vpc))
    ctx.export(t, Network.VPC_CIDR, GetAtt(vpc, "CidrBlock"))
    ctx.export(t, Network.PUBLIC_SUBNET_IDS, Join(",", [Ref(s) for s in subnets["public"]]))
    ctx.export(t, Network.PRIVATE_SUBNET_IDS, Join(",", [Ref(s) for s in subnets["private"]]))
    ctx.export(t, Network.DATA_SUBNET_IDS, Join(",", [Ref(s) for s in subnets["data"]]))
    ctx.export(t, Network.NAT_GATEWAY_IDS, Join(",", [Ref(n) for n in nats]))  # for the NAT alarms
    return t


def _subnet(t: Template, ctx: LayerContext, vpc: ec2.VPC, zone: Zone, tier: str) -> ec2.Subnet:
    cidr = getattr(ctx.env.network.subnets, tier)[zone.index]
    public_ip = tier == "public" and ctx.env.network.map_public_ip_on_launch
    subnet = ec2.Subnet(
        f"{TIER_LABELS[tier]}Subnet{zone.letter}",
        VpcId=Ref(vpc),
        AvailabilityZone=zone.name,
        CidrBlock=str(cidr),
        MapPublicIpOnLaunch=public_ip,
        Tags=Tags(Name=f"{ctx.stack_name}-{tier}-{zone.letter.lower()}", Tier=tier),
    )
    if public_ip:
        constructs.skip_checkov(
            subnet,
            (
                "CKV_AWS_130",
                "network.map_public_ip_on_launch is true in this environment's settings: instances launched "
                "here get a public address by request",
            ),
        )
    return t.add_resource(subnet)


def _nat_gateway(
    t: Template, ctx: LayerContext, zone: Zone, subnet: ec2.Subnet, attachment: ec2.VPCGatewayAttachment
) -> ec2.NatGateway:
    eip = t.add_resource(
        ec2.EIP(
            f"NatAddress{zone.letter}",
            DependsOn=[attachment.title],
            Domain="vpc",
            Tags=Tags(Name=f"{ctx.stack_name}-nat-{zone.letter.lower()}"),
        )
    )
    return t.add_resource(
        ec2.NatGateway(
            f"NatGateway{zone.letter}",
            AllocationId=GetAtt(eip, "AllocationId"),
            SubnetId=Ref(subnet),
            Tags=Tags(Name=f"{ctx.stack_name}-nat-{zone.letter.lower()}"),
        )
    )


def _route_table(
    t: Template, ctx: LayerContext, vpc: ec2.VPC, zone: Zone, *, tier: str, subnet: ec2.Subnet
) -> ec2.RouteTable:
    label = TIER_LABELS[tier]
    table = t.add_resource(
        ec2.RouteTable(
            f"{label}RouteTable{zone.letter}",
            VpcId=Ref(vpc),
            Tags=Tags(Name=f"{ctx.stack_name}-{tier}-{zone.letter.lower()}"),
        )
    )
    t.add_resource(
        ec2.SubnetRouteTableAssociation(
            f"{label}RouteTableAssociation{zone.letter}", RouteTableId=Ref(table), SubnetId=Ref(subnet)
        )
    )
    return table


def _flow_logs(t: Template, ctx: LayerContext, vpc: ec2.VPC) -> None:
    settings = ctx.env.network.flow_logs
    group = t.add_resource(
        constructs.log_group("FlowLogGroup", ctx.env, settings.retention_days, ctx.import_value(Keys.LOGS_KEY_ARN))
    )
    role = t.add_resource(
        iam.service_role(
            "FlowLogRole",
            service="vpc-flow-logs.amazonaws.com",
            source_arn=Sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:vpc-flow-log/*"),
            description=f"VPC flow logs of {ctx.stack_name} deliver to their log group",
            policy_name="deliver-flow-logs",
            statements=[
                iam.allow(
                    "WriteToTheFlowLogGroupOnly",
                    [awslogs.CreateLogStream, awslogs.PutLogEvents, awslogs.DescribeLogStreams],
                    [GetAtt(group, "Arn")],
                ),
                iam.allow(
                    "DescribeTheFlowLogGroup",
                    [awslogs.DescribeLogGroups],
                    [Sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*")],
                ),
            ],
        )
    )
    t.add_resource(
        ec2.FlowLog(
            "VpcFlowLog",
            ResourceId=Ref(vpc),
            ResourceType="VPC",
            TrafficType=settings.traffic_type,
            LogDestinationType="cloud-watch-logs",
            LogGroupName=Ref(group),
            DeliverLogsPermissionArn=GetAtt(role, "Arn"),
            MaxAggregationInterval=60,
            Tags=Tags(Name=ctx.stack_name),
        )
    )


def _endpoints(
    t: Template,
    ctx: LayerContext,
    vpc: ec2.VPC,
    private_subnets: list[ec2.Subnet],
    private_tables: list[ec2.RouteTable],
) -> None:
    t.add_resource(
        ec2.VPCEndpoint(
            "S3GatewayEndpoint",
            VpcId=Ref(vpc),
            ServiceName=Sub("com.amazonaws.${AWS::Region}.s3"),
            VpcEndpointType="Gateway",
            RouteTableIds=[Ref(table) for table in private_tables],
        )
    )
    services = ctx.env.network.interface_endpoints
    if not services:
        return
    group = t.add_resource(
        ec2.SecurityGroup(
            "EndpointSecurityGroup",
            GroupDescription=f"Interface endpoints of {ctx.stack_name}: HTTPS from inside the VPC only",
            VpcId=Ref(vpc),
            SecurityGroupIngress=[
                ec2.SecurityGroupRule(
                    IpProtocol="tcp",
                    FromPort=443,
                    ToPort=443,
                    CidrIp=str(ctx.env.network.cidr),
                    Description="HTTPS to the AWS APIs from anywhere in the VPC",
                )
            ],
            # Endpoints only answer; they never open connections.
            SecurityGroupEgress=[constructs.NO_EGRESS],
            Tags=Tags(Name=f"{ctx.stack_name}-endpoints"),
        )
    )
    for service in sorted(services):
        t.add_resource(
            ec2.VPCEndpoint(
                "InterfaceEndpoint" + "".join(part.capitalize() for part in service.split(".")),
                VpcId=Ref(vpc),
                ServiceName=Sub("com.amazonaws.${AWS::Region}.%s" % service),
                VpcEndpointType="Interface",
                PrivateDnsEnabled=True,
                SubnetIds=[Ref(s) for s in private_subnets],
                SecurityGroupIds=[Ref(group)],
            )
        )


def _close_default_security_group(t: Template, ctx: LayerContext, vpc: ec2.VPC) -> None:
    """Revoke every rule of the VPC's default security group (Security Hub EC2.2), through a small
    custom resource: a function whose role may revoke rules of that one group and nothing else."""
    group_id = GetAtt(vpc, "DefaultSecurityGroup")
    group_arn = Sub(
        "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:security-group/${Group}", Group=group_id
    )
    function, _ = constructs.inline_function(
        t,
        ctx.env,
        "DefaultSecurityGroupCloser",
        code=CLOSER_CODE,
        description=f"Revokes every rule of {ctx.stack_name}'s default security group (Security Hub EC2.2)",
        role_description=f"Revokes the rules of {ctx.stack_name}'s default security group, that group only",
        policy_name="close-the-default-security-group",
        statements=[
            iam.allow(
                "RevokeTheDefaultGroupsRulesOnly",
                [awsec2.RevokeSecurityGroupIngress, awsec2.RevokeSecurityGroupEgress],
                [group_arn],
            ),
            # The service authorization reference lists no resource type for
            # ec2:DescribeSecurityGroups: it is granted on "*" or not at all.
            iam.allow("ReadTheGroupsRules", [awsec2.DescribeSecurityGroups], ["*"]),
        ],
        log_group_title="DefaultSecurityGroupCloserLogGroup",
        log_retention_days=ctx.env.network.flow_logs.retention_days,
        logs_key_arn=ctx.import_value(Keys.LOGS_KEY_ARN),
        skips=(
            ("CKV_AWS_117", "No VPC on purpose: it calls the EC2 API and CloudFormation's response URL only"),
            (
                "CKV_AWS_116",
                "Only CloudFormation invokes it, and a failed call fails the stack operation (its reason in the "
                "function's log group): a dead-letter queue would hold nothing anyone acts on",
            ),
        ),
    )
    t.add_resource(
        cloudformation.CustomResource(
            "DefaultSecurityGroupClosed",
            ServiceToken=GetAtt(function, "Arn"),
            ServiceTimeout=300,
            GroupId=group_id,
        )
    )
