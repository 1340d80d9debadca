"""One way in (issue 14): with the default ``platform.ingress: cloudfront`` no request reaches a
load balancer except through CloudFront. Proved over the generated templates of every fixture
environment: what each load balancer listens on, which security groups it takes, and every
inbound rule of those groups; and the custom resource that resolves the managed prefix lists,
run against EC2's real API model."""

from __future__ import annotations

import sys
import types
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from conftest import ENVIRONMENTS, build_environment, edit_yaml, resources

from templates import security

CLOUDFRONT = {"Fn::GetAtt": ["ManagedPrefixLists", "CloudFront"]}
ROUTE53 = {"Fn::GetAtt": ["ManagedPrefixLists", "Route53HealthChecks"]}


def _own_group(ref: Any, env: str) -> str:
    """The security stack's logical ID of a group a load balancer takes by import
    (``shop-<env>-security-AlbSecurityGroupId2`` -> ``AlbSecurityGroup2``)."""
    name = ref["Fn::ImportValue"]
    prefix = f"shop-{env}-security-"
    assert name.startswith(prefix), name
    return name.removeprefix(prefix).replace("GroupId", "Group")


def _inbound(security_body: dict, group: str) -> list[dict]:
    return [
        r["Properties"]
        for r in resources(security_body, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_request_reaches_a_load_balancer_except_through_cloudfront(stacks, environments, env) -> None:
    settings = environments[env]
    assert settings.platform.ingress == "cloudfront"  # the default
    platform, sec = stacks[env]["platform"].body, stacks[env]["security"].body
    vpc = str(settings.network.cidr)
    test_port = settings.deployment.test_listener_port
    albs = resources(platform, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert albs
    for alb in albs.values():
        groups = [_own_group(ref, env) for ref in alb["Properties"]["SecurityGroups"]]
        for group in groups:
            for rule in _inbound(sec, group):
                assert "CidrIpv6" not in rule and "SourceSecurityGroupId" not in rule, rule
                if group == "AlbHealthCheckSecurityGroup":
                    # Route 53's health checkers only, on HTTPS, for the DNS failover (dns stack).
                    assert (rule["FromPort"], rule["ToPort"], rule["SourcePrefixListId"]) == (443, 443, ROUTE53)
                elif "CidrIp" in rule:
                    # The blue/green test listener answers inside the VPC, never the internet.
                    assert (rule["FromPort"], rule["ToPort"], rule["CidrIp"]) == (test_port, test_port, vpc), rule
                else:
                    assert (rule["FromPort"], rule["ToPort"], rule["SourcePrefixListId"]) == (443, 443, CLOUDFRONT)
    # No port-80 listener: CloudFront redirects viewers and reaches the origin over HTTPS only.
    ports = sorted(
        {x["Properties"]["Port"] for x in resources(platform, "AWS::ElasticLoadBalancingV2::Listener").values()}
    )
    assert ports == sorted({443} | ({test_port} if settings.blue_green_services else set()))
    alb = next(o for o in _distribution(stacks, env)["Origins"] if o["Id"] == "load-balancer")
    assert alb["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    names = sec["Resources"]["ManagedPrefixLists"]["Properties"]["Names"]
    assert names["CloudFront"] == "com.amazonaws.global.cloudfront.origin-facing"


def _distribution(stacks, env: str) -> dict:
    (distribution,) = resources(stacks[env]["edge"].body, "AWS::CloudFront::Distribution").values()
    return distribution["Properties"]["DistributionConfig"]


def test_only_the_dns_failover_primary_admits_route53_health_checkers(stacks) -> None:
    for env in ENVIRONMENTS:
        sec = stacks[env]["security"].body
        checked = "AlbHealthCheckSecurityGroup" in sec["Resources"]
        assert checked == (env == "prod"), env  # prod's API name fails over to dr by Route 53
        first = resources(stacks[env]["platform"].body, "AWS::ElasticLoadBalancingV2::LoadBalancer")["LoadBalancer"]
        assert len(first["Properties"]["SecurityGroups"]) == (2 if checked else 1)
    names = stacks["prod"]["security"].body["Resources"]["ManagedPrefixLists"]["Properties"]["Names"]
    assert names["Route53HealthChecks"] == {"Fn::Sub": "com.amazonaws.${AWS::Region}.route53-healthchecks"}
    # and the check it admits is the one the dns stack makes, on the same port: the only check
    # that makes requests (the others are CALCULATED or read CloudWatch alarms)
    checks = resources(stacks["prod"]["dns"].body, "AWS::Route53::HealthCheck")
    endpoints = {n: c["Properties"]["HealthCheckConfig"] for n, c in checks.items()}
    endpoints = {n: c for n, c in endpoints.items() if c["Type"] not in {"CALCULATED", "CLOUDWATCH_METRIC"}}
    assert list(endpoints) == ["LoadBalancerHealthCheck"]
    assert (endpoints["LoadBalancerHealthCheck"]["Type"], endpoints["LoadBalancerHealthCheck"]["Port"]) == (
        "HTTPS",
        443,
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_load_balancers_rate_limit_counts_the_viewers_address(stacks, environments, env) -> None:
    acls = resources(stacks[env]["platform"].body, "AWS::WAFv2::WebACL")
    if not environments[env].platform.waf.load_balancer:
        assert not acls
        return
    (acl,) = acls.values()
    (rate,) = [r for r in acl["Properties"]["Rules"] if "RateBasedStatement" in r["Statement"]]
    statement = rate["Statement"]["RateBasedStatement"]
    assert statement["AggregateKeyType"] == "FORWARDED_IP"
    assert statement["ForwardedIPConfig"] == {"HeaderName": "X-Forwarded-For", "FallbackBehavior": "NO_MATCH"}


def test_ingress_internet_opens_https_and_the_redirect_and_counts_the_connecting_address(settings_dir) -> None:
    edit_yaml(settings_dir / "staging.yaml", platform__ingress="internet")
    built = build_environment(settings_dir, "staging")
    listeners = resources(built["platform"].body, "AWS::ElasticLoadBalancingV2::Listener").values()
    assert 80 in {x["Properties"]["Port"] for x in listeners}
    (acl,) = resources(built["platform"].body, "AWS::WAFv2::WebACL").values()
    (rate,) = [r for r in acl["Properties"]["Rules"] if "RateBasedStatement" in r["Statement"]]
    assert rate["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP"
    assert "ForwardedIPConfig" not in rate["Statement"]["RateBasedStatement"]


def test_the_lookups_role_may_read_prefix_lists_only(stacks) -> None:
    role = stacks["prod"]["security"].body["Resources"]["PrefixListLookupRole"]["Properties"]
    (policy,) = role["Policies"]
    grants = {s["Sid"]: (s["Action"], s["Resource"]) for s in policy["PolicyDocument"]["Statement"]}
    # ec2:DescribeManagedPrefixLists has no resource type: "*" is the only way to grant it.
    assert grants["ReadManagedPrefixLists"] == (["ec2:DescribeManagedPrefixLists"], ["*"])
    assert set(grants) == {"ReadManagedPrefixLists", "WriteItsOwnLogs"}


# --- the lookup's inline code, against EC2's real API model ------------------------------------


class _Response:
    SUCCESS, FAILED = "SUCCESS", "FAILED"

    def __init__(self) -> None:
        self.sent: list[tuple] = []

    def send(self, event, context, status, data, physical_id, *, reason=None) -> None:
        self.sent.append((status, data, physical_id, reason))


NAMES = {
    "CloudFront": "com.amazonaws.global.cloudfront.origin-facing",
    "Route53HealthChecks": "com.amazonaws.eu-west-1.route53-healthchecks",
}


def _found(name: str, pl: str, entries: int) -> dict:
    return {
        "PrefixListId": pl,
        "AddressFamily": "IPv4",
        "State": "create-complete",
        "PrefixListName": name,
        "MaxEntries": entries,
        "OwnerId": "AWS",
    }


def _run_lookup(monkeypatch, request_type: str, found: list[dict] | None, *, denied: bool = False) -> list[tuple]:
    session = boto3.session.Session(region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    client = session.client("ec2")
    stubber = Stubber(client)
    expected = {"Filters": [{"Name": "prefix-list-name", "Values": sorted(NAMES.values())}]}
    if found is not None:
        stubber.add_response("describe_managed_prefix_lists", {"PrefixLists": found}, expected)
    if denied:
        stubber.add_client_error("describe_managed_prefix_lists", "UnauthorizedOperation", http_status_code=403)
    stubber.activate()
    response = _Response()
    monkeypatch.setitem(sys.modules, "cfnresponse", response)
    monkeypatch.setattr(boto3, "client", lambda service: client)
    module = types.ModuleType("lookup")
    exec(security.LOOKUP_CODE, module.__dict__)  # the function's own inline source
    module.handler({"RequestType": request_type, "ResourceProperties": {"Names": NAMES}}, None)
    stubber.assert_no_pending_responses()
    return response.sent


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_the_lookup_answers_each_lists_id_by_name(monkeypatch, request_type) -> None:
    found = [
        _found("com.amazonaws.eu-west-1.route53-healthchecks", "pl-0a1b2c3d4e5f60718", 25),
        _found("com.amazonaws.global.cloudfront.origin-facing", "pl-4fa04526", 55),
    ]
    assert _run_lookup(monkeypatch, request_type, found) == [
        (
            "SUCCESS",
            {"CloudFront": "pl-4fa04526", "Route53HealthChecks": "pl-0a1b2c3d4e5f60718"},
            "managed-prefix-lists",
            None,
        )
    ]


def test_the_lookup_fails_the_stack_when_a_list_is_missing_or_ec2_refuses(monkeypatch) -> None:
    only_cloudfront = [_found("com.amazonaws.global.cloudfront.origin-facing", "pl-4fa04526", 55)]
    ((status, data, _, reason),) = _run_lookup(monkeypatch, "Create", only_cloudfront)
    assert (status, data) == ("FAILED", {}) and "route53-healthchecks" in reason
    ((status, _, _, reason),) = _run_lookup(monkeypatch, "Create", None, denied=True)
    assert status == "FAILED" and "UnauthorizedOperation" in reason


def test_the_lookup_does_nothing_on_delete(monkeypatch) -> None:
    assert _run_lookup(monkeypatch, "Delete", None) == [("SUCCESS", {}, "managed-prefix-lists", None)]
