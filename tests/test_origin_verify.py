"""The secret origin header (issue 14, "One way in"): behind CloudFront every forwarding listener
rule requires the X-Origin-Verify value CloudFront's API origin sends, from one Secrets Manager
secret per DR pair; Route 53's health check of DNS failover still gets through; the rotation
function changes the rules before the distributions and finishes only after CloudFront deployed.
The rotation's inline code (as the template ships it) runs here against botocore's real API
models (Stubber)."""

from __future__ import annotations

import datetime
import fnmatch
import json
import sys
import types
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from conftest import BUILT, ENVIRONMENTS, build_environment, edit_yaml, refusal, resources

from infra_templates.config import SettingsError, load_environment, load_settings
from templates import data_access, edge, origin_verify

RULE = "AWS::ElasticLoadBalancingV2::ListenerRule"


def _references(name: str) -> list[str]:
    return [
        "{{resolve:secretsmanager:%s:SecretString:header:%s}}" % (name, stage)
        for stage in ("AWSCURRENT", "AWSPREVIOUS")
    ]


def _header_conditions(rule: dict) -> list[dict]:
    return [c for c in rule["Properties"]["Conditions"] if c["Field"] == "http-header"]


def _api_origin(stacks, env: str) -> dict:
    (distribution,) = resources(stacks[env]["edge"].body, "AWS::CloudFront::Distribution").values()
    origins = distribution["Properties"]["DistributionConfig"]["Origins"]
    return next(o for o in origins if o["Id"] == edge.LOAD_BALANCER)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_forwarding_rule_requires_the_header_cloudfront_sends(stacks, environments, env) -> None:
    settings = environments[env]
    assert settings.platform.ingress == "cloudfront"
    owner = settings.dr.protects if settings.dr is not None else env
    name = f"shop-{owner}-origin-verify-value"
    (sent,) = _api_origin(stacks, env)["OriginCustomHeaders"]
    assert sent == {"HeaderName": "X-Origin-Verify", "HeaderValue": _references(name)[0]}
    production = 0
    for layer, stack in stacks[env].items():
        for logical, rule in resources(stack.body, RULE).items():
            listener = rule["Properties"]["ListenerArn"]["Fn::ImportValue"]
            forwards = any(a["Type"] == "forward" for a in rule["Properties"]["Actions"])
            if logical == "HealthCheckListenerRule":
                # Route 53's health path: no header, and answered by the load balancer itself (below)
                assert not _header_conditions(rule) and not forwards, (layer, logical)
                continue
            assert forwards, (layer, logical)
            if "TestListenerArn" in listener:
                # the VPC-only test listener: no header
                assert not _header_conditions(rule), (layer, logical)
                continue
            assert "HttpsListenerArn" in listener, (layer, logical)
            (condition,) = _header_conditions(rule)
            # the same secret, current and previous: what the distribution sends before and after a rotation
            assert condition["HttpHeaderConfig"] == {"HttpHeaderName": "X-Origin-Verify", "Values": _references(name)}
            production += 1
    assert production == len(settings.web_services)


def test_one_secret_per_dr_pair_replicated_into_the_dr_region(stacks, environments) -> None:
    for env in ENVIRONMENTS:
        has_stack = "origin-verify" in stacks[env]
        assert has_stack == (environments[env].dr is None), env  # dr reads prod's
    secret = stacks["prod"]["origin-verify"].body["Resources"]["OriginVerifySecret"]["Properties"]
    assert secret["Name"] == "shop-prod-origin-verify-value"
    # Not a hyphen and six characters at the end, which Secrets Manager may take for an ARN's suffix.
    assert len(secret["Name"].rsplit("-", 1)[1]) != 6
    (replica,) = secret["ReplicaRegions"]
    assert replica == {"Region": environments["dr"].region, "KmsKeyId": {"Ref": "DataKeyArn"}}
    assert (
        stacks["prod"]["origin-verify"].body["Metadata"]["InfraTemplatesParameterSources"]["DataKeyArn"]["Stack"]
        == "shop-dr-keys"
    )
    generated = secret["GenerateSecretString"]
    # lower-case letters and digits: the listener compares case-insensitively and reads * and ? as wildcards
    assert generated["ExcludePunctuation"] and generated["ExcludeUppercase"] and generated["PasswordLength"] >= 32
    assert (
        "ReplicaRegions" not in stacks["staging"]["origin-verify"].body["Resources"]["OriginVerifySecret"]["Properties"]
    )


def test_the_secret_deploys_before_every_stack_that_reads_it() -> None:
    """Each folder's manifest: the origin-verify stack (the primary's, for dr) before edge and svc."""
    for env in ENVIRONMENTS:
        manifest = json.loads(BUILT.files[env]["manifest.json"])
        order = [stack["name"] for stack in manifest["stacks"]]
        owner = "prod" if env == "dr" else env
        secret = order.index(f"shop-{owner}-origin-verify")
        readers = [i for i, n in enumerate(order) if n.startswith((f"shop-{env}-edge", f"shop-{env}-svc-"))]
        assert readers and secret < min(readers), env


def test_the_rotation_role_reaches_the_pairs_rules_and_distributions_only(stacks, environments) -> None:
    role = stacks["prod"]["origin-verify"].body["Resources"]["OriginVerifyRotationFunctionRole"]["Properties"]
    (policy,) = role["Policies"]
    grants = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert grants["RotateTheOriginVerifySecret"]["Resource"] == [{"Ref": "OriginVerifySecret"}]
    tags = {"StringEquals": {"aws:ResourceTag/Project": "shop", "aws:ResourceTag/Environment": ["prod", "dr"]}}
    rules = grants["ChangeThePairsListenerRules"]
    assert rules["Action"] == ["elasticloadbalancing:ModifyRule"] and rules["Condition"] == tags
    regions = sorted(r["Fn::Sub"].split(":")[5] for r in rules["Resource"])  # arn:${AWS::Partition}:service:REGION
    assert regions == sorted([environments["prod"].region, environments["dr"].region])
    assert grants["ChangeThePairsDistributions"]["Condition"] == tags
    # UpdateDistribution resends the web ACL's id, which CloudFront may check the caller can read:
    # the pair's CloudFront web ACLs (us-east-1, global), read only
    acls = grants["ReadThePairsCloudFrontWebAcls"]
    assert acls["Action"] == ["wafv2:GetWebACL"]
    assert sorted(r["Fn::Sub"] for r in acls["Resource"]) == [
        f"arn:${{AWS::Partition}}:wafv2:us-east-1:${{AWS::AccountId}}:global/webacl/shop-{e}-*/*"
        for e in ("dr", "prod")
    ]
    for name in ("shop-prod-edge-waf", "shop-prod-edge-cloudfront"):  # the names edge_waf and edge give them
        assert any(
            fnmatch.fnmatchcase(f"global/webacl/{name}/abc", r["Fn::Sub"].split("${AWS::AccountId}:")[1])
            for r in acls["Resource"]
        )
    # "*" only where the API has no resource-level permission
    stars = sorted(sid for sid, s in grants.items() if s["Resource"] == ["*"])
    assert stars == ["FindTheDistributions", "FindTheLoadBalancerRules", "GenerateAValue"]
    # the role carries the environment's permissions boundary, like every other role
    assert "PermissionsBoundary" in role
    function = stacks["prod"]["origin-verify"].body["Resources"]["OriginVerifyRotationFunction"]["Properties"]
    variables = function["Environment"]["Variables"]
    assert json.loads(variables["TAGS"]) == {"Environment": ["prod", "dr"], "Project": ["shop"]}
    assert variables["REGIONS"] == f"{environments['prod'].region},{environments['dr'].region}"
    assert len(function["Code"]["ZipFile"]) <= 4096  # AWS::Lambda::Function Code.ZipFile
    schedule = stacks["prod"]["origin-verify"].body["Resources"]["OriginVerifyRotationSchedule"]
    assert schedule["Properties"]["RotationRules"] == {"AutomaticallyAfterDays": origin_verify.ROTATION_DAYS}
    # AWSPREVIOUS exists before any stack reads it, and before the first rotation
    assert "OriginVerifySecondVersion" in schedule["DependsOn"]


def test_route53_health_checks_reach_the_health_path_without_the_header(stacks, environments) -> None:
    """A Route 53 health check sends no custom header: one rule for exactly the DR pair's health
    path (the api's), at the lowest precedence, in the dns stack, answered by the load balancer
    itself: a fixed 200, no target group (a blue/green service's idle colour has no target, and ECS
    moves only the service's own rule)."""
    path = environments["dr"].dr.dns.health_check_path
    check = stacks["prod"]["dns"].body["Resources"]["LoadBalancerHealthCheck"]["Properties"]["HealthCheckConfig"]
    assert check["ResourcePath"] == path
    found = {
        (env, layer): rule
        for env in ENVIRONMENTS
        for layer, stack in stacks[env].items()
        for logical, rule in resources(stack.body, RULE).items()
        if logical == "HealthCheckListenerRule"
    }
    # only the DNS-failover primary is health-checked; the rule is the dns stack's (it reaches no service)
    assert list(found) == [("prod", "dns")]
    rule = found["prod", "dns"]["Properties"]
    assert rule["Conditions"] == [{"Field": "path-pattern", "PathPatternConfig": {"Values": [path]}}]
    assert rule["Priority"] == 50000
    assert rule["ListenerArn"] == {"Fn::ImportValue": "shop-prod-platform-HttpsListenerArn"}
    (action,) = rule["Actions"]
    # Route 53 counts 2xx and 3xx as healthy (HealthCheckConfig Type: HTTPS)
    assert action == {
        "Type": "fixed-response",
        "FixedResponseConfig": {"StatusCode": "200", "ContentType": "text/plain", "MessageBody": "ok"},
    }
    assert "TargetGroup" not in json.dumps(rule)  # no target group receives it
    priorities = [r["Properties"]["Priority"] for r in resources(stacks["prod"]["svc-web"].body, RULE).values()] + [
        r["Properties"]["Priority"]
        for n, r in resources(stacks["prod"]["svc-api"].body, RULE).items()
        if n != "HealthCheckListenerRule"
    ]
    assert max(priorities) < 50000  # every header-checked rule is evaluated first


def test_ingress_internet_stays_as_it_was(settings_dir) -> None:
    edit_yaml(settings_dir / "staging.yaml", platform__ingress="internet")
    built = build_environment(settings_dir, "staging")
    assert "origin-verify" not in built
    for stack in built.values():
        for rule in resources(stack.body, RULE).values():
            assert not _header_conditions(rule)
    assert "OriginCustomHeaders" not in _api_origin({"staging": built}, "staging")


def test_a_route_that_no_longer_fits_the_quota_with_the_header_is_refused(settings_dir) -> None:
    path = settings_dir / "defaults.yaml"
    edit_yaml(path, services__api__routing={"paths": ["/api/*", "/v1/*", "/v2/*", "/v3/*"]})
    message = refusal(settings_dir)
    assert "services.api.routing.paths" in message and "defaults.yaml" in message
    assert "Condition values per rule" in message and "at most 3 paths and hosts" in message
    # the same route is fine where the load balancer is reachable directly (no header condition)
    edit_yaml(settings_dir / "staging.yaml", platform__ingress="internet")
    assert "Condition values per rule" not in _load_or_message(settings_dir)


def test_a_dr_pair_has_one_ingress(settings_dir) -> None:
    """dr reads prod's origin-verify secret: a pair where only one side is behind CloudFront is refused."""
    edit_yaml(settings_dir / "dr.yaml", platform__ingress="internet")
    with pytest.raises(SettingsError) as caught:
        load_settings(settings_dir)
    assert "dr.yaml: platform.ingress: is 'internet', prod's is 'cloudfront'" in str(caught.value)


def _load_or_message(settings_dir) -> str:
    try:
        load_environment("staging", settings_dir)
    except SettingsError as error:
        return str(error)
    return ""


# --- the rotation function's inline code, against the real API models ---------------------------

ARN = "arn:aws:secretsmanager:eu-west-1:333333333333:secret:shop-prod-origin-verify-value-AbCdEf"
TOKEN = "11111111-2222-3333-4444-555555555555"
OLD = "22222222-2222-3333-4444-555555555555"
LB = "arn:aws:elasticloadbalancing:{region}:333333333333:loadbalancer/app/shop-{env}/0123456789abcdef"
LISTENER = (
    "arn:aws:elasticloadbalancing:{region}:333333333333:listener/app/shop-{env}/0123456789abcdef/0123456789abcdef"
)
RULE_ARN = LISTENER.replace(":listener/", ":listener-rule/") + "/{n}"
CURRENT, PENDING = "c" * 64, "p" * 64


class _Response:
    SUCCESS, FAILED = "SUCCESS", "FAILED"

    def __init__(self) -> None:
        self.sent: list[tuple] = []

    def send(self, event, context, status, data, physical_id, *, reason=None) -> None:
        self.sent.append((status, physical_id))


class _Clients:
    """boto3.client replaced: one stubbed client per (service, region), every call recorded in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.stubbers: dict[tuple[str, str], Stubber] = {}
        self.clients: dict[tuple[str, str], Any] = {}

    def stub(self, service: str, region: str = "eu-west-1") -> Stubber:
        key = (service, region)
        if key not in self.clients:
            session = boto3.session.Session(region_name=region, aws_access_key_id="x", aws_secret_access_key="x")
            client = session.client(service)
            client.meta.events.register(
                "before-call.*.*", lambda model, **_: self.calls.append((service, region, model.name))
            )
            self.clients[key] = client
            self.stubbers[key] = Stubber(client)
        return self.stubbers[key]

    def client(self, service: str, region_name: str = "eu-west-1") -> Any:
        return self.clients[(service, region_name)]

    def done(self) -> None:
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


def _rotation(stacks, monkeypatch, clients: _Clients) -> types.ModuleType:
    function = stacks["prod"]["origin-verify"].body["Resources"]["OriginVerifyRotationFunction"]["Properties"]
    for key, value in function["Environment"]["Variables"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.setitem(sys.modules, "cfnresponse", _Response())
    monkeypatch.setattr(boto3, "client", clients.client)
    module = types.ModuleType("rotation")
    exec(function["Code"]["ZipFile"], module.__dict__)  # the code exactly as the template ships it
    for stubber in clients.stubbers.values():
        stubber.activate()
    return module


def _stages(sm: Stubber, stages: dict[str, list[str]]) -> None:
    sm.add_response("describe_secret", {"VersionIdsToStages": stages}, {"SecretId": ARN})


def _value(sm: Stubber, stage: str, value: str, version: str | None = None) -> None:
    expected = {"SecretId": ARN, "VersionStage": stage, **({"VersionId": version} if version else {})}
    sm.add_response("get_secret_value", {"SecretString": json.dumps({"header": value})}, expected)


def _tags(env: str) -> list[dict]:
    return [{"Key": "Project", "Value": "shop"}, {"Key": "Environment", "Value": env}]


def _load_balancers(elb: Stubber, region: str, env: str, rules: list[dict]) -> None:
    lb = LB.format(region=region, env=env)
    elb.add_response("describe_load_balancers", {"LoadBalancers": [{"LoadBalancerArn": lb}]}, {})
    elb.add_response(
        "describe_tags", {"TagDescriptions": [{"ResourceArn": lb, "Tags": _tags(env)}]}, {"ResourceArns": [lb]}
    )
    listener = LISTENER.format(region=region, env=env)
    elb.add_response(
        "describe_listeners", {"Listeners": [{"ListenerArn": listener}]}, {"LoadBalancerArn": lb, "PageSize": 400}
    )
    elb.add_response("describe_rules", {"Rules": rules}, {"ListenerArn": listener, "PageSize": 400})


def _rule(region: str, env: str, n: int, header: list[str] | None) -> dict:
    conditions: list[dict] = [
        {"Field": "path-pattern", "Values": ["/api/*"], "PathPatternConfig": {"Values": ["/api/*"]}}
    ]
    if header is not None:
        conditions.append(
            {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Origin-Verify", "Values": header}}
        )
    return {
        "RuleArn": RULE_ARN.format(region=region, env=env, n=n),
        "Priority": str(n),
        "Conditions": conditions,
        "IsDefault": False,
    }


def _summary(id: str) -> dict:
    """A DistributionSummary with the members CloudFront's model requires."""
    return {
        "Id": id,
        "ARN": f"arn:aws:cloudfront::333333333333:distribution/{id}",
        "Status": "Deployed",
        "LastModifiedTime": datetime.datetime(2026, 1, 1),
        "DomainName": f"{id.lower()}.cloudfront.net",
        "Aliases": {"Quantity": 0},
        "Origins": {"Quantity": 1, "Items": [{"Id": "api", "DomainName": "origin.shop.example.com"}]},
        "DefaultCacheBehavior": {"TargetOriginId": "assets", "ViewerProtocolPolicy": "redirect-to-https"},
        "CacheBehaviors": {"Quantity": 0},
        "CustomErrorResponses": {"Quantity": 0},
        "Comment": "",
        "PriceClass": "PriceClass_100",
        "Enabled": True,
        "ViewerCertificate": {},
        "Restrictions": {"GeoRestriction": {"RestrictionType": "none", "Quantity": 0}},
        "WebACLId": "",
        "HttpVersion": "http2and3",
        "IsIPV6Enabled": True,
        "Staging": False,
    }


def _config(value: str) -> dict:
    return {
        "CallerReference": "ref", "Comment": "", "Enabled": True,
        "DefaultCacheBehavior": {"TargetOriginId": "assets", "ViewerProtocolPolicy": "redirect-to-https"},
        "Origins": {"Quantity": 2, "Items": [
            {"Id": "assets", "DomainName": "assets.s3.eu-west-1.amazonaws.com"},
            {"Id": "api", "DomainName": "origin.shop.example.com", "CustomHeaders": {
                "Quantity": 1, "Items": [{"HeaderName": "X-Origin-Verify", "HeaderValue": value}]}},
        ]},
    }  # fmt: skip


def _distributions(cf: Stubber, ours: list[str], others: list[str], then: Any = None) -> None:
    """ListDistributions, then each distribution's tags; ``then(id)`` stubs what follows for each of ours
    (the function reads them one at a time)."""
    ids = ours + others
    listed = {"Marker": "", "MaxItems": 100, "IsTruncated": False, "Quantity": len(ids)}
    cf.add_response("list_distributions", {"DistributionList": {**listed, "Items": [_summary(i) for i in ids]}}, {})
    for id in ids:
        env = "prod" if id in ours else "staging"
        cf.add_response(
            "list_tags_for_resource",
            {"Tags": {"Items": _tags(env)}},
            {"Resource": f"arn:aws:cloudfront::333333333333:distribution/{id}"},
        )
        if id in ours and then is not None:
            then(id)


def _event(step: str) -> dict:
    return {"SecretId": ARN, "ClientRequestToken": TOKEN, "Step": step}


ROTATING = {TOKEN: ["AWSPENDING"], OLD: ["AWSCURRENT"]}


def test_create_secret_stages_a_new_lowercase_value_as_pending(stacks, monkeypatch) -> None:
    clients = _Clients()
    sm = clients.stub("secretsmanager")
    _stages(sm, ROTATING)
    sm.add_client_error(
        "get_secret_value",
        "ResourceNotFoundException",
        expected_params={"SecretId": ARN, "VersionId": TOKEN, "VersionStage": "AWSPENDING"},
    )
    sm.add_response(
        "get_random_password",
        {"RandomPassword": PENDING},
        {"PasswordLength": 64, "ExcludePunctuation": True, "ExcludeUppercase": True},
    )
    sm.add_response(
        "put_secret_value",
        {},
        {
            "SecretId": ARN,
            "ClientRequestToken": TOKEN,
            "SecretString": json.dumps({"header": PENDING}),
            "VersionStages": ["AWSPENDING"],
        },
    )
    clients.stub("cloudfront")
    _rotation(stacks, monkeypatch, clients).handler(_event("createSecret"), None)
    clients.done()


def _set_secret(stacks, monkeypatch, sent: str) -> _Clients:
    """setSecret over prod's and dr's load balancers (one rule with the header, one without each) and
    three distributions (prod's and dr's, tagged; staging's, not), which send ``sent``."""
    clients = _Clients()
    sm = clients.stub("secretsmanager")
    _stages(sm, ROTATING)
    _value(sm, "AWSPENDING", PENDING, TOKEN)
    _value(sm, "AWSCURRENT", CURRENT)
    cf = clients.stub("cloudfront")
    _distributions(
        cf,
        ours=["EPROD", "EDR"],
        others=["ESTAGING"],
        then=lambda id: cf.add_response(
            "get_distribution_config", {"DistributionConfig": _config(sent), "ETag": f"E-{id}"}, {"Id": id}
        ),
    )
    if sent in (CURRENT, PENDING):
        expected_conditions = [
            {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}},
            {
                "Field": "http-header",
                "HttpHeaderConfig": {"HttpHeaderName": "X-Origin-Verify", "Values": [PENDING, CURRENT]},
            },
        ]
        for region, env in (("eu-west-1", "prod"), ("eu-central-1", "dr")):
            elb = clients.stub("elbv2", region)
            rules = [_rule(region, env, 1, [CURRENT, "o" * 64]), _rule(region, env, 2, None)]  # 2: no header
            _load_balancers(elb, region, env, rules)
            changed = {"RuleArn": RULE_ARN.format(region=region, env=env, n=1), "Conditions": expected_conditions}
            elb.add_response("modify_rule", {}, changed)
        for id in ("EPROD", "EDR") if sent == CURRENT else ():
            update = {"Id": id, "IfMatch": f"E-{id}", "DistributionConfig": _config(PENDING)}
            cf.add_response("update_distribution", {}, update)
    module = _rotation(stacks, monkeypatch, clients)
    if sent in (CURRENT, PENDING):
        module.handler(_event("setSecret"), None)
    else:
        with pytest.raises(ValueError, match="unknown value"):
            module.handler(_event("setSecret"), None)
    clients.done()
    return clients


def test_set_secret_changes_every_rule_of_the_pair_before_any_distribution(stacks, monkeypatch) -> None:
    clients = _set_secret(stacks, monkeypatch, CURRENT)
    changes = [(service, op) for service, _, op in clients.calls if op in ("ModifyRule", "UpdateDistribution")]
    # (1) the rules accept pending and current, in both regions; (2) only then CloudFront sends pending
    assert changes == [("elbv2", "ModifyRule")] * 2 + [("cloudfront", "UpdateDistribution")] * 2
    assert {region for service, region, op in clients.calls if op == "ModifyRule"} == {"eu-west-1", "eu-central-1"}


def test_set_secret_again_leaves_a_distribution_that_sends_pending_alone(stacks, monkeypatch) -> None:
    clients = _set_secret(stacks, monkeypatch, PENDING)  # a retried step: CloudFront moved already
    assert [op for _, _, op in clients.calls].count("ModifyRule") == 2
    assert "UpdateDistribution" not in [op for _, _, op in clients.calls]


def test_set_secret_changes_nothing_while_a_distribution_sends_an_unknown_value(stacks, monkeypatch) -> None:
    """A value neither current nor pending (a rotation left half done): moving the rules to (pending,
    current) would refuse what that distribution sends, so the step stops before any change."""
    clients = _set_secret(stacks, monkeypatch, "u" * 64)
    assert not [op for _, _, op in clients.calls if op in ("ModifyRule", "UpdateDistribution")]


def test_test_secret_waits_until_every_distribution_is_deployed(stacks, monkeypatch) -> None:
    clients = _Clients()
    sm = clients.stub("secretsmanager")
    _stages(sm, ROTATING)
    _value(sm, "AWSPENDING", PENDING, TOKEN)
    cf = clients.stub("cloudfront")
    distribution = {
        "Id": "EPROD", "ARN": "arn:aws:cloudfront::333333333333:distribution/EPROD",
        "LastModifiedTime": datetime.datetime(2026, 1, 1), "InProgressInvalidationBatches": 0,
        "DomainName": "eprod.cloudfront.net", "DistributionConfig": _config(PENDING),
    }  # fmt: skip

    def polled(id: str) -> None:  # in progress once, then deployed
        for status in ("InProgress", "Deployed"):
            cf.add_response("get_distribution", {"Distribution": {**distribution, "Status": status}}, {"Id": id})

    _distributions(cf, ours=["EPROD"], others=["ESTAGING"], then=polled)
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # the waiter's delay
    _rotation(stacks, monkeypatch, clients).handler(_event("testSecret"), None)
    clients.done()
    assert [op for _, _, op in clients.calls].count("GetDistribution") == 2


def test_finish_secret_makes_pending_current_and_current_previous(stacks, monkeypatch) -> None:
    clients = _Clients()
    sm = clients.stub("secretsmanager")
    _stages(sm, ROTATING)
    _value(sm, "AWSPENDING", PENDING, TOKEN)
    sm.add_response(
        "update_secret_version_stage",
        {},
        {"SecretId": ARN, "VersionStage": "AWSCURRENT", "MoveToVersionId": TOKEN, "RemoveFromVersionId": OLD},
    )
    clients.stub("cloudfront")
    _rotation(stacks, monkeypatch, clients).handler(_event("finishSecret"), None)
    clients.done()
    # no rule or distribution changes at the end: they already say (current, previous) and current
    assert not [op for _, _, op in clients.calls if op in ("ModifyRule", "UpdateDistribution")]


def test_a_version_not_staged_for_rotation_is_refused_and_a_finished_one_left_alone(stacks, monkeypatch) -> None:
    clients = _Clients()
    sm = clients.stub("secretsmanager")
    _stages(sm, {OLD: ["AWSCURRENT"]})
    clients.stub("cloudfront")
    with pytest.raises(ValueError):
        _rotation(stacks, monkeypatch, clients).handler(_event("setSecret"), None)
    clients = _Clients()
    sm = clients.stub("secretsmanager")
    _stages(sm, {TOKEN: ["AWSCURRENT"]})
    _rotation(stacks, monkeypatch, clients).handler(_event("finishSecret"), None)
    clients.done()


def test_the_stacks_custom_resource_puts_a_second_version_on_create_only(stacks, monkeypatch) -> None:
    for request, calls in (("Create", 1), ("Update", 0), ("Delete", 0)):
        clients = _Clients()
        sm = clients.stub("secretsmanager")
        if calls:
            sm.add_response(
                "get_random_password",
                {"RandomPassword": CURRENT},
                {"PasswordLength": 64, "ExcludePunctuation": True, "ExcludeUppercase": True},
            )
            sm.add_response(
                "put_secret_value",
                {},
                {"SecretId": ARN, "SecretString": json.dumps({"header": CURRENT}), "VersionStages": ["AWSCURRENT"]},
            )
        module = _rotation(stacks, monkeypatch, clients)
        module.handler({"RequestType": request, "ResourceProperties": {"SecretId": ARN}}, None)
        clients.done()
        assert sys.modules["cfnresponse"].sent == [("SUCCESS", "second-version")]
    clients = _Clients()
    sm = clients.stub("secretsmanager")
    sm.add_client_error("get_random_password", "AccessDeniedException")
    module = _rotation(stacks, monkeypatch, clients)
    module.handler({"RequestType": "Create", "ResourceProperties": {"SecretId": ARN}}, None)
    assert sys.modules["cfnresponse"].sent == [("FAILED", "second-version")]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_failed_rotation_reaches_people_at_its_first_error(stacks, environments, env) -> None:
    """Each rotation function of the environment (the administrator secret's, the origin-verify
    secret's) has an alarm on its errors in the monitoring stack, firing on one error: a failed step
    leaves a pending version that blocks every later rotation, and a step runs once per schedule."""
    alarms = resources(stacks[env]["monitoring"].body, "AWS::CloudWatch::Alarm")
    expected = {
        "MasterRotationErrorsAlarm": ("data", "MasterRotationFunction", data_access.rotates_master(environments[env])),
        "OriginVerifyRotationErrorsAlarm": (
            "origin-verify",
            "OriginVerifyRotationFunction",
            origin_verify.owns(environments[env]),
        ),
    }
    for alarm, (layer, function, exists) in expected.items():
        assert (alarm in alarms) is exists, (env, alarm)
        if not exists:
            continue
        props = alarms[alarm]["Properties"]
        assert (props["Namespace"], props["MetricName"], props["Statistic"]) == ("AWS/Lambda", "Errors", "Sum")
        assert (props["EvaluationPeriods"], props["DatapointsToAlarm"], props["Threshold"]) == (1, 1, 0)
        assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["TreatMissingData"] == "notBreaching"
        (dimension,) = props["Dimensions"]
        export = dimension["Value"]["Fn::ImportValue"]
        outputs = stacks[env][layer].body["Outputs"]
        (exported,) = [o for o in outputs.values() if o.get("Export", {}).get("Name") == export]
        assert exported["Value"] == {"Ref": function}


def test_every_shipped_rotation_is_alarmed_somewhere(stacks, environments) -> None:
    """The test above is not vacuous: the fixtures have both rotations."""
    assert any(data_access.rotates_master(e) for e in environments.values())
    assert any(origin_verify.owns(e) for e in environments.values())
