"""Edge layer: a private assets bucket readable only by its distribution, the API behind it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BUILT, ENVIRONMENTS, build_environment, edit_yaml, refusal, resources


def distribution(stacks, env: str) -> dict:
    return stacks[env]["edge"].body["Resources"]["Distribution"]["Properties"]["DistributionConfig"]


OWN_ASSETS = [e for e in ENVIRONMENTS if e != "dr"]  # dr serves the replica of prod's assets


def assets_bucket(stacks, env: str) -> dict:
    if env == "dr":
        return stacks[env]["assets-replica"].body["Resources"]["ReplicaBucket"]["Properties"]
    return stacks[env]["edge"].body["Resources"]["AssetsBucket"]["Properties"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_assets_bucket_is_private_encrypted_versioned_and_logged(stacks, env) -> None:
    bucket = assets_bucket(stacks, env)
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::ImportValue": f"shop-{env}-keys-DataKeyArn"},
    }
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    (lifecycle,) = bucket["LifecycleConfiguration"]["Rules"]
    assert "ExpirationInDays" not in lifecycle  # current assets never expire, old versions do
    assert lifecycle["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert bucket["LoggingConfiguration"]["DestinationBucketName"] == {
        "Fn::ImportValue": f"shop-{env}-platform-LogBucketName"
    }


@pytest.mark.parametrize("env", OWN_ASSETS)
def test_bucket_is_readable_by_its_distribution_only(stacks, env) -> None:
    (policy,) = resources(stacks[env]["edge"].body, "AWS::S3::BucketPolicy").values()
    deny, read = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert read["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert read["Action"] == ["s3:GetObject"]
    assert read["Condition"] == {
        "StringEquals": {
            "AWS:SourceArn": {
                "Fn::Sub": "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${Distribution}"
            }
        }
    }
    origin = distribution(stacks, env)["Origins"][0]
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["OriginAccessControl", "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}  # OAC, not the legacy OAI


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_web_owns_the_default_the_api_path_and_assets_have_their_own(stacks, environments, env) -> None:
    """web routes '/*': the default behaviour is the load balancer's (uncached, every method, every
    viewer value but Host), the assets come first under edge.assets_path, the API keeps https-only."""
    config = distribution(stacks, env)
    default = config["DefaultCacheBehavior"]
    assert default["TargetOriginId"] == "load-balancer"
    assert default["ViewerProtocolPolicy"] == "redirect-to-https"  # the site's entry: http:// is redirected
    assert "DefaultRootObject" not in config  # '/' is the web service's, not index.html's
    assets, api = config["CacheBehaviors"]
    # prod, protected by dr, fails its assets over to dr's replica (see test_dr.py)
    assert assets["PathPattern"] == "/assets/*" == environments[env].edge.assets_path
    assert assets["TargetOriginId"] == ("assets-failover" if env == "prod" else "assets")
    assert assets["CachePolicyId"] == "658327ea-f89d-4fab-a63d-7e88639e58f6"  # CachingOptimized
    assert assets["AllowedMethods"] == ["GET", "HEAD", "OPTIONS"] and assets["Compress"] is True
    assert api["PathPattern"] == "/api/*" and api["TargetOriginId"] == "load-balancer"
    assert api["ViewerProtocolPolicy"] == "https-only"  # a POST must not be redirected into a GET
    for behaviour in (default, api):
        assert behaviour["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # CachingDisabled
        # AllViewerExceptHostHeader: every viewer value but Host
        assert behaviour["OriginRequestPolicyId"] == "b689b0a8-53d0-40ab-baf2-68738e2966ac"
        assert {"POST", "PUT", "DELETE", "PATCH"} <= set(behaviour["AllowedMethods"])
    (alb,) = (o for o in config["Origins"] if o["Id"] == "load-balancer")
    assert alb["DomainName"] == environments[env].edge.origin_domain
    assert alb["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert alb["CustomOriginConfig"]["OriginSSLProtocols"] == ["TLSv1.2"]
    assert config["HttpVersion"] == "http2and3"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_security_headers_on_every_behaviour(stacks, env) -> None:
    body = stacks[env]["edge"].body
    headers = body["Resources"]["SecurityHeaders"]["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert headers["ContentTypeOptions"] == {"Override": True}
    assert headers["FrameOptions"]["FrameOption"] == "DENY"
    assert headers["ReferrerPolicy"]["ReferrerPolicy"] == "strict-origin-when-cross-origin"
    config = distribution(stacks, env)
    for behaviour in [config["DefaultCacheBehavior"], *config["CacheBehaviors"]]:
        assert behaviour["ResponseHeadersPolicyId"] == {"Ref": "SecurityHeaders"}


def test_dev_uses_the_default_certificate_and_says_why(stacks) -> None:
    config = distribution(stacks, "dev")
    assert config["ViewerCertificate"] == {"CloudFrontDefaultCertificate": True}
    assert "Aliases" not in config
    skips = stacks["dev"]["edge"].body["Resources"]["Distribution"]["Metadata"]["checkov"]["skip"]
    assert "CKV_AWS_174" in {skip["id"] for skip in skips}


@pytest.mark.parametrize("env", ["staging", "prod", "dr"])
def test_aliases_get_their_us_east_1_certificate_and_tls_1_2(stacks, environments, env) -> None:
    config = distribution(stacks, env)
    assert config["Aliases"] == environments[env].edge.aliases
    certificate = config["ViewerCertificate"]
    assert certificate["MinimumProtocolVersion"] == "TLSv1.2_2021"
    assert certificate["SslSupportMethod"] == "sni-only"
    assert certificate["AcmCertificateArn"]["Fn::Sub"].startswith("arn:${AWS::Partition}:acm:us-east-1:")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_access_logs_go_to_the_log_bucket(stacks, env) -> None:
    logging = distribution(stacks, env)["Logging"]
    assert logging["Bucket"] == {
        "Fn::Sub": [
            "${LogBucket}.s3.${AWS::URLSuffix}",
            {"LogBucket": {"Fn::ImportValue": f"shop-{env}-platform-LogBucketName"}},
        ]
    }


@pytest.mark.parametrize("env", [e for e in ENVIRONMENTS if BUILT.environments[e].platform.waf.cloudfront])
def test_the_cloudfront_web_acl_lives_in_us_east_1(stacks, env) -> None:
    waf = stacks[env]["edge-waf"]
    assert waf.region == "us-east-1"
    acl = waf.body["Resources"]["WebAcl"]["Properties"]
    assert acl["Scope"] == "CLOUDFRONT"
    assert distribution(stacks, env)["WebACLId"] == {"Ref": "WebAclArn"}
    assert stacks[env]["edge"].parameters["WebAclArn"] == {
        "stack": f"shop-{env}-edge-waf",
        "output": "WebAclArn",
        "region": "us-east-1",  # recorded: a DR folder deploys its primary's edge stack, not its firewall
    }
    assert f"shop-{env}-edge-waf" in stacks[env]["edge"].depends_on
    group = waf.body["Resources"]["WafLogGroup"]["Properties"]
    assert group["KmsKeyId"] == {"Fn::GetAtt": ["LogsKey", "Arn"]}  # a key of its own region


def test_without_the_cloudfront_web_acl_there_is_no_edge_waf_stack(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", platform__waf={"cloudfront": False})
    stacks = build_environment(settings_dir, "staging")
    assert "edge-waf" not in stacks
    body = stacks["edge"].body
    assert "WebACLId" not in body["Resources"]["Distribution"]["Properties"]["DistributionConfig"]
    assert "Parameters" not in body
    skips = {s["id"]: s["comment"] for s in body["Resources"]["Distribution"]["Metadata"]["checkov"]["skip"]}
    assert "platform.waf.cloudfront is false" in skips["CKV_AWS_68"]
    assert resources(stacks["platform"].body, "AWS::WAFv2::WebACL")  # the load balancer keeps its own


def test_an_environment_in_us_east_1_keeps_its_web_acl_in_the_edge_stack(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "staging.yaml",
        region="us-east-1",
        platform__certificate_arn="arn:aws:acm:us-east-1:222222222222:certificate/22222222-2222-2222-2222-222222222222",
    )
    stacks = build_environment(settings_dir, "staging")
    assert "edge-waf" not in stacks
    body = stacks["edge"].body
    assert "Parameters" not in body
    assert body["Resources"]["WebAcl"]["Properties"]["Scope"] == "CLOUDFRONT"
    assert body["Resources"]["Distribution"]["Properties"]["DistributionConfig"]["WebACLId"] == {
        "Fn::GetAtt": ["WebAcl", "Arn"]
    }


def test_a_cloudfront_certificate_outside_us_east_1_is_refused(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "staging.yaml",
        edge__certificate_arn="arn:aws:acm:eu-west-1:222222222222:certificate/22222222-2222-2222-2222-222222222223",
    )
    assert "staging.yaml: edge.certificate_arn = 'arn:aws:acm:eu-west-1:" in refusal(settings_dir)
    assert "must be a certificate in us-east-1" in refusal(settings_dir)


def test_aliases_without_a_certificate_are_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dev.yaml", edge__aliases=["dev.shop.example.com"])
    assert "dev.yaml: edge.certificate_arn: is required with edge.aliases" in refusal(settings_dir, "dev")


def test_a_certificate_without_aliases_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", edge__aliases=[])
    assert "edge.certificate_arn = 'arn:aws:acm:us-east-1:" in refusal(settings_dir)
    assert "is set but edge.aliases is empty" in refusal(settings_dir)
