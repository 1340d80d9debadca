"""Platform layer: cluster, ALB, listeners, access logs and WAF."""

from __future__ import annotations

import pytest
from conftest import ENVIRONMENTS, build_environment, edit_yaml, resources


def attributes(body: dict) -> dict[str, object]:
    alb = body["Resources"]["LoadBalancer"]["Properties"]
    return {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cluster_offers_fargate_and_spot_with_container_insights(stacks, environments, env) -> None:
    cluster = stacks[env]["platform"].body["Resources"]["Cluster"]["Properties"]
    assert cluster["CapacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    insights = environments[env].platform.container_insights
    assert cluster["ClusterSettings"] == [{"Name": "containerInsights", "Value": insights}]
    capacity = environments[env].platform.capacity
    assert cluster["DefaultCapacityProviderStrategy"] == [
        {"CapacityProvider": "FARGATE", "Base": capacity.fargate_base, "Weight": capacity.fargate_weight},
        {"CapacityProvider": "FARGATE_SPOT", "Weight": capacity.spot_weight},
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_alb_is_hardened(stacks, env) -> None:
    body = stacks[env]["platform"].body
    alb = body["Resources"]["LoadBalancer"]["Properties"]
    assert alb["Scheme"] == "internet-facing"
    assert alb["Subnets"] == {"Fn::Split": [",", {"Fn::ImportValue": f"shop-{env}-network-PublicSubnetIds"}]}
    attrs = attributes(body)
    assert attrs["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attrs["routing.http.desync_mitigation_mode"] == "strictest"
    assert attrs["access_logs.s3.enabled"] == "true"
    assert attrs["access_logs.s3.bucket"] == {"Ref": "AccessLogBucket"}


@pytest.mark.parametrize(
    ("env", "protected"), [("dev", "false"), ("staging", "true"), ("prod", "true"), ("dr", "true")]
)
def test_deletion_protection_outside_dev(stacks, env, protected) -> None:
    assert attributes(stacks[env]["platform"].body)["deletion_protection.enabled"] == protected


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_https_listener_uses_a_modern_policy_the_settings_certificate_and_a_404_default(
    stacks, environments, env
) -> None:
    listener = stacks[env]["platform"].body["Resources"]["HttpsListener"]["Properties"]
    assert (listener["Port"], listener["Protocol"]) == (443, "HTTPS")
    assert listener["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    certificate = listener["Certificates"][0]["CertificateArn"]["Fn::Sub"]
    assert certificate.endswith(environments[env].platform.certificate_arn.rsplit("/", 1)[1])
    assert certificate.startswith("arn:${AWS::Partition}:acm:${AWS::Region}:${AWS::AccountId}:certificate/")
    (action,) = listener["DefaultActions"]
    assert action["Type"] == "fixed-response" and action["FixedResponseConfig"]["StatusCode"] == "404"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_behind_cloudfront_there_is_no_port_80(stacks, env) -> None:
    assert "HttpRedirectListener" not in stacks[env]["platform"].body["Resources"]


def test_with_internet_ingress_http_only_redirects_to_https(settings_dir) -> None:
    edit_yaml(settings_dir / "staging.yaml", platform__ingress="internet")
    body = build_environment(settings_dir, "staging")["platform"].body
    listener = body["Resources"]["HttpRedirectListener"]["Properties"]
    (action,) = listener["DefaultActions"]
    assert action == {
        "Type": "redirect",
        "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"},
    }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_waf_guards_the_alb_with_managed_rules_and_a_rate_limit(stacks, environments, env) -> None:
    body = stacks[env]["platform"].body
    acl = body["Resources"]["WebAcl"]["Properties"]
    assert acl["Scope"] == "REGIONAL"
    rules = {r["Name"]: r for r in acl["Rules"]}
    assert set(rules) == {
        "RateLimitPerIp",
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
    }
    limit = rules["RateLimitPerIp"]["Statement"]["RateBasedStatement"]
    assert limit["Limit"] == environments[env].platform.waf_rate_limit
    assert "Block" in rules["RateLimitPerIp"]["Action"]
    assert len({r["Priority"] for r in acl["Rules"]}) == 4
    association = body["Resources"]["WebAclAssociation"]["Properties"]
    assert association == {"ResourceArn": {"Ref": "LoadBalancer"}, "WebACLArn": {"Fn::GetAtt": ["WebAcl", "Arn"]}}
    logging = body["Resources"]["WafLogging"]["Properties"]
    assert logging["LogDestinationConfigs"][0]["Fn::Sub"].endswith(":log-group:${WafLogGroup}")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_access_log_bucket_is_private_tls_only_and_writable_by_elb_only(stacks, env) -> None:
    body = stacks[env]["platform"].body
    bucket = body["Resources"]["AccessLogBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    # CloudFront's standard logging writes with an ACL grant: this bucket alone keeps ACLs on.
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerPreferred"}]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    (policy,) = resources(body, "AWS::S3::BucketPolicy").values()
    deny, write, server_logs = policy["Properties"]["PolicyDocument"]["Statement"]
    assert server_logs["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert server_logs["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert write["Action"] == ["s3:PutObject"]
    assert write["Resource"] == [{"Fn::Sub": "${AccessLogBucket.Arn}/alb/AWSLogs/${AWS::AccountId}/*"}]
    # eu-west-1 and eu-central-1 opened before August 2022: ELB delivers from its regional account.
    expected = {"dr": "054676820928"}.get(env, "156460612806")
    assert write["Principal"] == {"AWS": {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::{expected}:root"}}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_exports_what_services_and_monitoring_need(stacks, env) -> None:
    assert stacks[env]["platform"].exports == sorted(
        f"shop-{env}-platform-{key}"
        for key in (
            "ClusterName",
            "ClusterArn",
            "LoadBalancerArn",
            "LoadBalancerFullName",
            "LoadBalancerDnsName",
            "LoadBalancerHostedZoneId",  # Route 53 alias records (dns failover)
            "HttpsListenerArn",
            "LogBucketName",
            *(["TestListenerArn"] if env != "dev" else []),  # blue/green services need a test listener
            "ServiceConnectNamespaceArn",  # the backends' and their callers' Service Connect namespace
        )
    )
