"""Network layer: what each environment's VPC promises."""

from __future__ import annotations

import sys
import types

import boto3
import pytest
from botocore.stub import Stubber
from conftest import ENVIRONMENTS, edit_yaml, resources

from infra_templates.config import load_environment
from infra_templates.pipeline import build_stacks
from templates import LAYERS, network

TIERS = ("Public", "Private", "Data")


def network_body(stacks, env: str) -> dict:
    return stacks[env]["network"].body


def route_table_of(body: dict, subnet: str) -> str:
    for assoc in resources(body, "AWS::EC2::SubnetRouteTableAssociation").values():
        if assoc["Properties"]["SubnetId"] == {"Ref": subnet}:
            return assoc["Properties"]["RouteTableId"]["Ref"]
    raise AssertionError(f"{subnet} has no route table")


def routes_of(body: dict, table: str) -> list[dict]:
    return [
        r["Properties"]
        for r in resources(body, "AWS::EC2::Route").values()
        if r["Properties"]["RouteTableId"] == {"Ref": table}
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_one_subnet_per_tier_and_zone_with_the_cidr_from_settings(stacks, environments, env) -> None:
    settings = environments[env].network
    subnets = resources(network_body(stacks, env), "AWS::EC2::Subnet")
    assert len(subnets) == 3 * settings.availability_zones
    for tier in TIERS:
        for index, letter in enumerate("ABC"[: settings.availability_zones]):
            props = subnets[f"{tier}Subnet{letter}"]["Properties"]
            assert props["CidrBlock"] == str(getattr(settings.subnets, tier.lower())[index])
            assert props["AvailabilityZone"] == {"Fn::Select": [index, {"Fn::GetAZs": ""}]}


@pytest.mark.parametrize(("env", "expected"), [("dev", 1), ("staging", 2), ("prod", 3), ("dr", 3)])
def test_nat_gateway_count(stacks, env, expected) -> None:
    assert len(resources(network_body(stacks, env), "AWS::EC2::NatGateway")) == expected
    assert len(resources(network_body(stacks, env), "AWS::EC2::EIP")) == expected


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_nat_gateways_sit_in_public_subnets(stacks, env) -> None:
    for nat in resources(network_body(stacks, env), "AWS::EC2::NatGateway").values():
        assert nat["Properties"]["SubnetId"]["Ref"].startswith("PublicSubnet")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_private_subnet_routes_out_through_a_nat_gateway(stacks, environments, env) -> None:
    body = network_body(stacks, env)
    per_zone = environments[env].network.nat_gateways == "per-zone"
    for letter in "ABC"[: environments[env].network.availability_zones]:
        routes = routes_of(body, route_table_of(body, f"PrivateSubnet{letter}"))
        assert [r["DestinationCidrBlock"] for r in routes] == ["0.0.0.0/0"]
        assert "GatewayId" not in routes[0]
        assert routes[0]["NatGatewayId"] == {"Ref": f"NatGateway{letter if per_zone else 'A'}"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_data_subnets_have_no_route_out(stacks, environments, env) -> None:
    body = network_body(stacks, env)
    for letter in "ABC"[: environments[env].network.availability_zones]:
        table = route_table_of(body, f"DataSubnet{letter}")
        assert routes_of(body, table) == []
        for endpoint in resources(body, "AWS::EC2::VPCEndpoint").values():
            assert {"Ref": table} not in endpoint["Properties"].get("RouteTableIds", [])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_public_subnets_route_to_the_internet_gateway_and_hand_out_no_public_ips(stacks, env) -> None:
    body = network_body(stacks, env)
    for name, subnet in resources(body, "AWS::EC2::Subnet").items():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False
        if name.startswith("Public"):
            (route,) = routes_of(body, route_table_of(body, name))
            assert route["GatewayId"] == {"Ref": "InternetGateway"}
            assert route["DestinationCidrBlock"] == "0.0.0.0/0"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_route_table_per_tier_and_zone(stacks, environments, env) -> None:
    tables = resources(network_body(stacks, env), "AWS::EC2::RouteTable")
    assert len(tables) == 3 * environments[env].network.availability_zones


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_flow_logs_capture_the_vpc_into_an_encrypted_group_with_retention(stacks, environments, env) -> None:
    body = network_body(stacks, env)
    (flow_log,) = resources(body, "AWS::EC2::FlowLog").values()
    props = flow_log["Properties"]
    assert props["ResourceId"] == {"Ref": "Vpc"}
    assert props["ResourceType"] == "VPC"
    assert props["TrafficType"] == environments[env].network.flow_logs.traffic_type
    group = resources(body, "AWS::Logs::LogGroup")[props["LogGroupName"]["Ref"]]
    assert group["Properties"]["RetentionInDays"] == environments[env].network.flow_logs.retention_days
    assert group["Properties"]["KmsKeyId"] == {"Fn::ImportValue": f"shop-{env}-keys-LogsKeyArn"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_flow_log_role_writes_only_to_its_group(stacks, env) -> None:
    body = network_body(stacks, env)
    role = resources(body, "AWS::IAM::Role")["FlowLogRole"]["Properties"]
    trust = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert "aws:SourceAccount" in trust["Condition"]["StringEquals"]
    (write,) = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"] if s["Sid"].startswith("Write")]
    assert write["Resource"] == [{"Fn::GetAtt": ["FlowLogGroup", "Arn"]}]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_s3_gateway_endpoint_serves_the_private_route_tables(stacks, environments, env) -> None:
    body = network_body(stacks, env)
    endpoint = resources(body, "AWS::EC2::VPCEndpoint")["S3GatewayEndpoint"]["Properties"]
    zones = environments[env].network.availability_zones
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert endpoint["RouteTableIds"] == [{"Ref": f"PrivateRouteTable{z}"} for z in "ABC"[:zones]]


def test_interface_endpoints_follow_settings(stacks) -> None:
    def interfaces(env: str) -> list[str]:
        return sorted(
            e["Properties"]["ServiceName"]["Fn::Sub"].rsplit(".", 1 if "ecr" not in str(e) else 2)[-1]
            for e in resources(network_body(stacks, env), "AWS::EC2::VPCEndpoint").values()
            if e["Properties"]["VpcEndpointType"] == "Interface"
        )

    assert interfaces("dev") == []
    assert "EndpointSecurityGroup" not in resources(network_body(stacks, "dev"))
    assert len(interfaces("prod")) == 4
    names = {
        e["Properties"]["ServiceName"]["Fn::Sub"]
        for e in resources(network_body(stacks, "prod"), "AWS::EC2::VPCEndpoint").values()
    }
    assert {f"com.amazonaws.${{AWS::Region}}.{s}" for s in ("ecr.api", "ecr.dkr", "logs", "secretsmanager")} < names


def test_endpoint_security_group_allows_https_from_the_vpc_only(stacks, environments) -> None:
    group = resources(network_body(stacks, "prod"))["EndpointSecurityGroup"]["Properties"]
    (ingress,) = group["SecurityGroupIngress"]
    assert (ingress["FromPort"], ingress["ToPort"], ingress["CidrIp"]) == (443, 443, "10.30.0.0/16")
    (egress,) = group["SecurityGroupEgress"]
    assert egress["CidrIp"] == "127.0.0.1/32"


def test_public_ips_on_launch_only_when_asked_and_said_so(settings_dir) -> None:
    edit_yaml(settings_dir / "dev.yaml", network__map_public_ip_on_launch=True)
    body = network.build(load_environment("dev", settings_dir)).to_dict()
    for name, subnet in resources(body, "AWS::EC2::Subnet").items():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is name.startswith("Public")
        if name.startswith("Public"):
            (skip,) = subnet["Metadata"]["checkov"]["skip"]
            assert skip["id"] == "CKV_AWS_130" and "map_public_ip_on_launch" in skip["comment"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_exports_give_vpc_and_subnet_lists_per_tier(stacks, environments, env) -> None:
    stack = stacks[env]["network"]
    assert stack.exports == sorted(
        f"shop-{env}-network-{key}"
        for key in ("VpcId", "VpcCidr", "PublicSubnetIds", "PrivateSubnetIds", "DataSubnetIds", "NatGatewayIds")
    )
    zones = environments[env].network.availability_zones
    private = stack.body["Outputs"]["PrivateSubnetIds"]["Value"]
    assert private == {"Fn::Join": [",", [{"Ref": f"PrivateSubnet{z}"} for z in "ABC"[:zones]]]}
    nats = zones if environments[env].network.nat_gateways == "per-zone" else 1
    # The monitoring stack selects one id per NAT gateway from this list, in zone order.
    assert stack.body["Outputs"]["NatGatewayIds"]["Value"] == {
        "Fn::Join": [",", [{"Ref": f"NatGateway{z}"} for z in "ABC"[:nats]]]
    }


def test_a_third_zone_adds_a_subnet_per_tier(settings_dir) -> None:
    edit_yaml(
        settings_dir / "staging.yaml",
        network__availability_zones=3,
        network__subnets__public=["10.20.0.0/24", "10.20.1.0/24", "10.20.2.0/24"],
        network__subnets__private=["10.20.16.0/20", "10.20.32.0/20", "10.20.48.0/20"],
        network__subnets__data=["10.20.64.0/24", "10.20.65.0/24", "10.20.66.0/24"],
    )
    stacks = {s.layer: s for s in build_stacks(load_environment("staging", settings_dir), LAYERS)}
    body = stacks["network"].body
    assert {n for n in resources(body, "AWS::EC2::Subnet") if n.endswith("C")} == {
        "PublicSubnetC",
        "PrivateSubnetC",
        "DataSubnetC",
    }
    assert len(resources(body, "AWS::EC2::NatGateway")) == 3


# --- the default security group, closed (Security Hub EC2.2) ---------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_default_security_group_is_closed_by_a_custom_resource(stacks, env) -> None:
    body = network_body(stacks, env)
    (closed,) = resources(body, "AWS::CloudFormation::CustomResource").values()
    props = closed["Properties"]
    assert props["GroupId"] == {"Fn::GetAtt": ["Vpc", "DefaultSecurityGroup"]}
    assert props["ServiceToken"] == {"Fn::GetAtt": ["DefaultSecurityGroupCloser", "Arn"]}
    function = body["Resources"]["DefaultSecurityGroupCloser"]["Properties"]
    assert function["Code"]["ZipFile"] == network.CLOSER_CODE
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": "DefaultSecurityGroupCloserLogGroup"}
    group = body["Resources"]["DefaultSecurityGroupCloserLogGroup"]["Properties"]
    assert group["KmsKeyId"] == {"Fn::ImportValue": f"shop-{env}-keys-LogsKeyArn"}
    assert group["RetentionInDays"] > 0


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_closer_may_revoke_rules_of_the_default_group_only(stacks, env) -> None:
    role = network_body(stacks, env)["Resources"]["DefaultSecurityGroupCloserRole"]["Properties"]
    (policy,) = role["Policies"]
    grants = {s["Sid"]: (s["Action"], s["Resource"]) for s in policy["PolicyDocument"]["Statement"]}
    actions, targets = grants["RevokeTheDefaultGroupsRulesOnly"]
    assert actions == ["ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress"]
    (target,) = targets
    assert target["Fn::Sub"][0].endswith(":security-group/${Group}")
    assert target["Fn::Sub"][1] == {"Group": {"Fn::GetAtt": ["Vpc", "DefaultSecurityGroup"]}}
    # ec2:DescribeSecurityGroups has no resource type: "*" is the only way to grant it, and it is alone.
    assert grants["ReadTheGroupsRules"] == (["ec2:DescribeSecurityGroups"], ["*"])
    assert grants["WriteItsOwnLogs"][1] == [{"Fn::GetAtt": ["DefaultSecurityGroupCloserLogGroup", "Arn"]}]
    assert set(grants) == {"RevokeTheDefaultGroupsRulesOnly", "ReadTheGroupsRules", "WriteItsOwnLogs"}


class _Response:
    SUCCESS, FAILED = "SUCCESS", "FAILED"

    def __init__(self) -> None:
        self.sent: list[tuple] = []

    def send(self, event, context, status, data, physical_id, *, reason=None) -> None:
        self.sent.append((status, physical_id, reason))


def _run_closer(
    monkeypatch, request_type: str, describe: dict | None, revokes: list[tuple[str, dict]], denied: bool = False
):
    """Run the inline handler against EC2's real API model (botocore's Stubber checks every request's
    shape), with cfnresponse recorded. Returns what the handler answered CloudFormation."""
    session = boto3.session.Session(region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    client = session.client("ec2")
    stubber = Stubber(client)
    if describe is not None:
        stubber.add_response("describe_security_groups", describe, {"GroupIds": ["sg-0123456789abcdef0"]})
    if denied:
        stubber.add_client_error("describe_security_groups", "UnauthorizedOperation", http_status_code=403)
    for operation, params in revokes:
        stubber.add_response(operation, {"Return": True}, params)
    stubber.activate()
    response = _Response()
    monkeypatch.setitem(sys.modules, "cfnresponse", response)
    monkeypatch.setattr(boto3, "client", lambda service: client)
    module = types.ModuleType("closer")
    exec(network.CLOSER_CODE, module.__dict__)  # the function's own inline source
    event = {"RequestType": request_type, "ResourceProperties": {"GroupId": "sg-0123456789abcdef0"}}
    module.handler(event, None)
    stubber.assert_no_pending_responses()
    return response.sent


DEFAULT_INGRESS = [
    {
        "IpProtocol": "-1",
        "IpRanges": [],
        "Ipv6Ranges": [],
        "PrefixListIds": [],
        "UserIdGroupPairs": [{"GroupId": "sg-0123456789abcdef0", "UserId": "111111111111"}],
    }
]
DEFAULT_EGRESS = [
    {
        "IpProtocol": "-1",
        "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
        "Ipv6Ranges": [],
        "PrefixListIds": [],
        "UserIdGroupPairs": [],
    }
]


def _described(ingress: list, egress: list) -> dict:
    return {
        "SecurityGroups": [
            {
                "GroupId": "sg-0123456789abcdef0",
                "GroupName": "default",
                "IpPermissions": ingress,
                "IpPermissionsEgress": egress,
            }
        ]
    }


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_the_closer_revokes_awss_default_rules(monkeypatch, request_type) -> None:
    sent = _run_closer(
        monkeypatch,
        request_type,
        _described(DEFAULT_INGRESS, DEFAULT_EGRESS),
        [
            ("revoke_security_group_ingress", {"GroupId": "sg-0123456789abcdef0", "IpPermissions": DEFAULT_INGRESS}),
            ("revoke_security_group_egress", {"GroupId": "sg-0123456789abcdef0", "IpPermissions": DEFAULT_EGRESS}),
        ],
    )
    assert sent == [("SUCCESS", "sg-0123456789abcdef0", None)]


def test_the_closer_leaves_a_closed_group_alone_and_does_nothing_on_delete(monkeypatch) -> None:
    assert _run_closer(monkeypatch, "Update", _described([], []), []) == [("SUCCESS", "sg-0123456789abcdef0", None)]
    assert _run_closer(monkeypatch, "Delete", None, []) == [("SUCCESS", "sg-0123456789abcdef0", None)]


def test_the_closer_reports_a_failure_to_cloudformation(monkeypatch) -> None:
    sent = _run_closer(monkeypatch, "Create", None, [], denied=True)
    ((status, physical_id, reason),) = sent
    assert (status, physical_id) == ("FAILED", "sg-0123456789abcdef0")
    assert "UnauthorizedOperation" in reason
