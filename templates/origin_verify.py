"""Origin-verify layer: the secret header CloudFront adds to every request it sends to the load
balancer, which the load balancer's forwarding rules require, and its rotation without an outage.

Behind CloudFront (``platform.ingress: cloudfront``) the load balancer's security group admits
CloudFront's origin-facing addresses only, but every distribution, anyone's, sends from those
addresses. AWS's answer is a custom header only our distribution knows: "Configure CloudFront to
add a custom HTTP header to requests that it sends to the Application Load Balancer" and "Configure
the Application Load Balancer to only forward requests that contain the custom HTTP header"
(CloudFront Developer Guide, "Restrict access to Application Load Balancers"; "Add custom headers
to origin requests"). The value lives in Secrets Manager (this stack) and reaches the templates as
dynamic references (AWS Secrets Manager User Guide, "Get an AWS Secrets Manager secret in an AWS
CloudFormation resource": ``{{resolve:secretsmanager:secret-id:SecretString:json-key:version-stage}}``):

- the distribution's API origin sends ``AWSCURRENT`` (``custom_headers``, templates/edge.py);
- each forwarding listener rule requires an ``http-header`` condition accepting ``AWSCURRENT`` or
  ``AWSPREVIOUS`` (``condition``, templates/service/web.py); the listeners' default action stays a
  fixed 404, so a request without the header reaches no service.

Rotation. CloudFormation resolves a dynamic reference only when it updates the resource ("Updating
a secret in Secrets Manager does not automatically update the secret in CloudFormation", same
page), so this stack's rotation function changes the live configuration itself, in the order of
AWS's sample rotation for this pattern (AWS Security Blog, "How to enhance Amazon CloudFront origin
security with AWS WAF and AWS Secrets Manager"; aws-samples/amazon-cloudfront-waf-secretsmanager),
with the four steps of "Lambda rotation functions" (AWS Secrets Manager User Guide):

1. ``createSecret``: a new random value, staged ``AWSPENDING``;
2. ``setSecret``: every listener rule carrying the header condition on the environment's load
   balancers (and its DR partner's, in that region) accepts pending and current; only then every
   distribution of the pair sends pending;
3. ``testSecret``: waits until those distributions are deployed (every edge sends pending);
4. ``finishSecret``: pending becomes ``AWSCURRENT``, the old value ``AWSPREVIOUS``.

At every instant the value an edge location sends is one the rules accept, and after step 4 the
live rules accept exactly (current, previous) and the distributions send current: what the
templates' references say, so a later stack update changes nothing.

A dynamic reference to ``AWSPREVIOUS`` fails while the secret has a single version, so the same
function, as a custom resource, puts a second generated value as ``AWSCURRENT`` when the stack is
created ("PutSecretValue": staging ``AWSCURRENT`` moves ``AWSPREVIOUS`` to the version it left),
before any stack that reads it.

A DR environment owns no secret: its stacks read the primary's, which replicates into its region
(``ReplicaRegions``): both distributions may reach both load balancers (the API's origin name fails
over by DNS, templates/dns.py), so the pair shares one value.

The name avoids ending in a hyphen and six characters ("Do not end your secret name with a hyphen
followed by six characters": AWS Secrets Manager API Reference, CreateSecret, Name; rule E9013).
"""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from typing import Any

from awacs import cloudfront as cloudfront_actions
from awacs import elasticloadbalancing as elb_actions
from awacs import kms as kms_actions
from awacs import secretsmanager as secrets_actions
from awacs import wafv2 as wafv2_actions
from awacs.aws import StringEquals
from troposphere import GetAtt, Ref, Sub, Template, cloudformation, cloudfront, secretsmanager
from troposphere import elasticloadbalancingv2 as elb

from infra_templates import constructs, derived, iam
from infra_templates.config import CLOUDFRONT_REGION, Environment
from infra_templates.layer import LayerContext
from templates.contracts import Keys, OriginVerify, dns_checked_service

LAYER = "origin-verify"
HEADER = "X-Origin-Verify"
KEY = "header"  # the JSON key of the value in the secret string
# A value of lower-case letters and digits only: the listener compares header values ignoring case
# and reads * and ? as wildcards ("The maximum size of each string is 128 characters. The comparison
# strings are case insensitive. The following wildcard characters are supported: * ... and ?":
# AWS::ElasticLoadBalancingV2::ListenerRule HttpHeaderConfig, Values); 64 of 36 characters are still
# 330 bits.
LENGTH = 64
ROTATION_DAYS = 30  # a month, as AWS's sample schedules it
ROTATION_TIMEOUT_SECONDS = 900  # Lambda's maximum: testSecret waits for CloudFront's deployment
STAGES = ("AWSCURRENT", "AWSPREVIOUS")

# Inline (ZipFile) code: at most 4,096 characters (AWS::Lambda::Function Code, ZipFile), and it may
# import cfnresponse ("cfn-response module", CloudFormation User Guide). The rules and distributions
# to change are found by their tags (Project, and Environment of this environment or its DR
# partner), as the sample finds them by configuration: a stack update never has to tell it. Listeners
# and rules are read in one page each: PageSize 400, the API's maximum (Elastic Load Balancing API
# Reference, DescribeListeners and DescribeRules, PageSize 1-400), is more than AWS's quotas let a
# load balancer hold (quotas.LISTENERS_PER_ALB, 50; quotas.RULES_PER_ALB, 100), so no rule is missed.
ROTATION_CODE = """\
import json
import os

import boto3
import cfnresponse

E = os.environ
H, KEY, TAGS = E["HEADER"].lower(), E["KEY"], json.loads(E["TAGS"])


def ours(tags):
    tags = {t["Key"]: t["Value"] for t in tags}
    return all(tags.get(k) in v for k, v in TAGS.items())


def has_header(c):
    return c.get("HttpHeaderConfig", {}).get("HttpHeaderName", "").lower() == H


def value(sm, arn, stage, **kw):
    return json.loads(sm.get_secret_value(SecretId=arn, VersionStage=stage, **kw)["SecretString"])[KEY]


def new_value(sm):
    r = sm.get_random_password(PasswordLength=int(E["LENGTH"]), ExcludePunctuation=True, ExcludeUppercase=True)
    return json.dumps({KEY: r["RandomPassword"]})


def rules():
    for region in E["REGIONS"].split(","):
        elb = boto3.client("elbv2", region_name=region)
        for page in elb.get_paginator("describe_load_balancers").paginate():
            for b in page["LoadBalancers"]:
                arn = b["LoadBalancerArn"]
                if not ours(elb.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"]):
                    continue
                for li in elb.describe_listeners(LoadBalancerArn=arn, PageSize=400)["Listeners"]:
                    for rule in elb.describe_rules(ListenerArn=li["ListenerArn"], PageSize=400)["Rules"]:
                        if any(map(has_header, rule["Conditions"])):
                            yield elb, rule


def distributions(cf):
    for page in cf.get_paginator("list_distributions").paginate():
        for d in page["DistributionList"].get("Items", []):
            if ours(cf.list_tags_for_resource(Resource=d["ARN"])["Tags"]["Items"]):
                yield d["Id"]


def handler(event, context):
    sm = boto3.client("secretsmanager")
    if "RequestType" in event:  # the custom resource: a second version, once
        status = cfnresponse.SUCCESS
        try:
            if event["RequestType"] == "Create":
                arn = event["ResourceProperties"]["SecretId"]
                sm.put_secret_value(SecretId=arn, SecretString=new_value(sm), VersionStages=["AWSCURRENT"])
        except Exception as error:
            print(error)
            status = cfnresponse.FAILED
        return cfnresponse.send(event, context, status, {}, "second-version")
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    stages = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    if not {"AWSPENDING", "AWSCURRENT"} & set(stages.get(token, [])):
        raise ValueError(token)
    if "AWSCURRENT" in stages[token]:
        return
    if step == "createSecret":
        try:
            sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        except sm.exceptions.ResourceNotFoundException:
            sm.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=new_value(sm),
                                VersionStages=["AWSPENDING"])
        return
    pending = value(sm, arn, "AWSPENDING", VersionId=token)
    cf = boto3.client("cloudfront")
    if step == "setSecret":
        current = value(sm, arn, "AWSCURRENT")
        found = {id: cf.get_distribution_config(Id=id) for id in distributions(cf)}
        headers = {id: [h for o in f["DistributionConfig"]["Origins"]["Items"]
                        for h in o.get("CustomHeaders", {}).get("Items", []) if h["HeaderName"].lower() == H]
                   for id, f in found.items()}
        if {h["HeaderValue"] for hs in headers.values() for h in hs} - {pending, current}:
            raise ValueError("a distribution sends an unknown value")
        for elb, rule in rules():  # 1: every rule accepts pending and current
            conditions = [{k: v for k, v in c.items() if k != "Values" or len(c) == 2} for c in rule["Conditions"]]
            for c in filter(has_header, conditions):
                c["HttpHeaderConfig"]["Values"] = [pending, current]
            elb.modify_rule(RuleArn=rule["RuleArn"], Conditions=conditions)
        for id, hs in headers.items():  # 2: then every distribution sends pending
            if any(h["HeaderValue"] != pending for h in hs):
                for h in hs:
                    h["HeaderValue"] = pending
                f = found[id]
                cf.update_distribution(Id=id, IfMatch=f["ETag"], DistributionConfig=f["DistributionConfig"])
    elif step == "testSecret":  # 3: every edge location sends pending
        for id in distributions(cf):
            cf.get_waiter("distribution_deployed").wait(Id=id, WaiterConfig={"Delay": 20, "MaxAttempts": 40})
    elif step == "finishSecret":  # 4: pending becomes current, current previous
        current = next(v for v, s in stages.items() if "AWSCURRENT" in s)
        sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token,
                                       RemoveFromVersionId=current)
    else:
        raise ValueError(step)
"""


@cache  # ROTATION_CODE is a constant: read once per process, not per environment
def shipped_code() -> str:
    """ROTATION_CODE as the template carries it (``_minified``), kept between runs as a derived table
    (derived.py: derived again when this module's text changes; parsing and unparsing it took 3 ms
    of every run)."""
    code: str = SHIPPED_CODE.get(SHIPPED_KEY)
    return code


def _minified() -> str:
    """ROTATION_CODE without comments and blank lines, indented by one space a level
    (``ast.unparse``), to fit ZipFile's 4,096 characters; the same program."""
    code = ast.unparse(ast.parse(ROTATION_CODE))
    return re.sub(r"(?m)^((?:    )+)", lambda m: " " * (len(m.group(1)) // 4), code) + "\n"


SHIPPED_KEY = "rotation"
SHIPPED_CODE = derived.Table("origin-verify-code", lambda: [], lambda: {SHIPPED_KEY: _minified()})


def runbook_lines(dr: Environment, primary: Environment) -> list[str]:
    """What the DR runbook says of the origin header: nothing to do at fail-over or fail-back."""
    if not needed(dr):
        return []
    return [
        f"- **Origin header**: both distributions send the `{HEADER}` value of `{secret_name(dr)}`, a",
        f"  secret of `{primary.name}` replicated into `{dr.region}`, and both load balancers' rules accept it:",
        f"  nothing to do when web traffic moves. Its rotation runs in `{primary.region}`; while that region is",
        "  down it does not run, and the value in use stays valid on both sides.",
    ]


def needed(env: Environment) -> bool:
    """Whether the environment's load balancers are behind CloudFront, and so check the header."""
    return env.platform.ingress == "cloudfront"


def owns(env: Environment) -> bool:
    """Whether the environment has this layer: a primary behind CloudFront (a DR environment reads
    its primary's secret, replicated into its region)."""
    return needed(env) and env.dr is None


def secret_name(env: Environment) -> str:
    """The secret's name, the same in both regions of a DR pair (the primary's)."""
    owner = env.dr.protects if env.dr is not None else env.name
    return f"{env.project}-{owner}-origin-verify-value"


def reference(env: Environment, stage: str) -> str:
    """A dynamic reference to the header value of version ``stage`` (AWSCURRENT, AWSPREVIOUS)."""
    return "{{resolve:secretsmanager:%s:SecretString:%s:%s}}" % (secret_name(env), KEY, stage)


def custom_headers(env: Environment) -> dict[str, Any]:
    """The properties of the ALB origin (``cloudfront.Origin``) that make CloudFront send the
    header: ``{"OriginCustomHeaders": [...]}``, or nothing with ``ingress: internet``."""
    if not needed(env):
        return {}
    return {
        "OriginCustomHeaders": [cloudfront.OriginCustomHeader(HeaderName=HEADER, HeaderValue=reference(env, STAGES[0]))]
    }


def condition(env: Environment) -> list[elb.Condition]:
    """The ``http-header`` condition a forwarding rule adds (two condition values: AWS's quota of
    five values per rule counts them, settings/environment.py), or none with ``ingress: internet``."""
    if not needed(env):
        return []
    return [
        elb.Condition(
            Field="http-header",
            HttpHeaderConfig=elb.HttpHeaderConfig(
                HttpHeaderName=HEADER, Values=[reference(env, stage) for stage in STAGES]
            ),
        )
    ]


CONDITION_VALUES = len(STAGES)
# The lowest precedence a rule can have ("Priority": 1 to 50,000, AWS::ElasticLoadBalancingV2::
# ListenerRule); the derived priorities stay below 40,000 (settings/services.py PRIORITY_BAND).
HEALTH_CHECK_PRIORITY = 50000


def health_check_service(env: Environment) -> str | None:
    """Behind CloudFront, the web service whose health path the Route 53 health check of DNS failover
    requests (``dns_checked_service``), or None: the dns stack then adds ``health_check_rule``,
    the one rule that answers without the header."""
    if not needed(env):
        return None
    return dns_checked_service(env)


HEALTH_CHECK_STATUS = "200"
HEALTH_CHECK_BODY = "ok"


def health_check_rule(env: Environment, listener: Any) -> elb.ListenerRule:
    """The rule that answers Route 53's health checkers on the health path without the header: a
    Route 53 health check sends no custom header (Route 53 API Reference, "HealthCheckConfig": a
    path, a host name, a search string, no headers), and its checkers reach the load balancer
    through their own security group (templates/security.py). It matches that one path only, at the
    lowest precedence, so a request with the header (CloudFront's) still reaches the service.

    The load balancer answers it itself (a ``fixed-response`` action: "Fixed-response actions",
    Elastic Load Balancing, "Listeners for your Application Load Balancers"), so the check proves
    the load balancer, its listener and certificate, and never reaches a target group. Forwarding
    instead would not work for a blue/green service: ECS or CodeDeploy move only the service's own
    rule between its two target groups, so this rule would forward to both at equal weight ("each
    target group receives half of the traffic", AWS::ElasticLoadBalancingV2::ListenerRule
    ForwardConfig), and between releases half the checks would meet the empty colour and get the
    load balancer's own 503 ("HTTP 503: Service unavailable: the target groups for the load
    balancer have no registered targets", "Troubleshoot your Application Load Balancers"), counted
    in ``HTTPCode_ELB_5XX_Count`` and paging on-call. The service's own health is the other half of
    the Route 53 check: its target groups' healthy targets (templates/dns.py)."""
    assert env.standby is not None and env.standby.dns is not None
    return elb.ListenerRule(
        "HealthCheckListenerRule",
        ListenerArn=listener,
        Priority=HEALTH_CHECK_PRIORITY,
        Conditions=[
            elb.Condition(
                Field="path-pattern",
                PathPatternConfig=elb.PathPatternConfig(Values=[env.standby.dns.health_check_path]),
            )
        ],
        Actions=[
            elb.ListenerRuleAction(
                Type="fixed-response",
                FixedResponseConfig=elb.FixedResponseConfig(
                    StatusCode=HEALTH_CHECK_STATUS, ContentType="text/plain", MessageBody=HEALTH_CHECK_BODY
                ),
            )
        ],
    )


def build(env: Environment) -> Template:
    ctx = LayerContext(env, LAYER)
    t = ctx.new_template(f"the secret {HEADER} header CloudFront sends to the load balancer, and its rotation")
    data_key = ctx.import_value(Keys.DATA_KEY_ARN)
    secret = secretsmanager.Secret(
        "OriginVerifySecret",
        Name=secret_name(env),
        Description=f"The value of the {HEADER} header CloudFront sends to {env.name}'s load balancers",
        KmsKeyId=data_key,
        GenerateSecretString=secretsmanager.GenerateSecretString(
            SecretStringTemplate="{}",
            GenerateStringKey=KEY,
            PasswordLength=LENGTH,
            ExcludePunctuation=True,
            ExcludeUppercase=True,
        ),
    )
    statements: list[Any] = [
        iam.allow(
            "RotateTheOriginVerifySecret",
            [
                secrets_actions.DescribeSecret,
                secrets_actions.GetSecretValue,
                secrets_actions.PutSecretValue,
                secrets_actions.UpdateSecretVersionStage,
            ],
            [Ref(secret)],
        ),
        # secretsmanager:GetRandomPassword acts on no resource (Service Authorization Reference): "*" only.
        iam.allow("GenerateAValue", [secrets_actions.GetRandomPassword], ["*"]),
        iam.allow(
            "EncryptAndReadItsVersions",
            [kms_actions.Decrypt, kms_actions.GenerateDataKey],
            [data_key],
            conditions=[StringEquals("kms:ViaService", Sub("secretsmanager.${AWS::Region}.amazonaws.com"))],
        ),
    ]
    regions = [env.region]
    environments = [env.name]
    if env.standby is not None:
        # Secrets Manager replicates each new version with the caller's identity, re-encrypting it
        # with the replica's key (the same as the administrator secret's rotation, data_access.py).
        replica_key = Ref(ctx.parameter_from(t, Keys.DATA_KEY_ARN, environment=env.standby.environment))
        secret.ReplicaRegions = [secretsmanager.ReplicaRegion(Region=env.standby.region, KmsKeyId=replica_key)]
        statements.append(
            iam.allow(
                "EncryptTheReplicasVersion",
                [kms_actions.Encrypt, kms_actions.GenerateDataKey],
                [replica_key],
                conditions=[StringEquals("kms:ViaService", f"secretsmanager.{env.standby.region}.amazonaws.com")],
            )
        )
        regions.append(env.standby.region)
        environments.append(env.standby.environment)
    constructs.protect(secret, env)  # kept in production, like every stateful resource there
    t.add_resource(secret)
    statements.extend(_change_statements(env, regions, environments))
    function, _ = constructs.inline_function(
        t,
        env,
        "OriginVerifyRotationFunction",
        code=shipped_code(),
        description=f"Rotates the {HEADER} value of {ctx.stack_name}: load balancer rules, then CloudFront",
        role_description=f"Rotates {ctx.stack_name}'s {HEADER} secret on its load balancer rules and distributions",
        policy_name="rotate-the-origin-verify-secret",
        statements=statements,
        log_group_title="OriginVerifyRotationLogGroup",
        log_retention_days=env.platform.log_retention_days,
        logs_key_arn=ctx.import_value(Keys.LOGS_KEY_ARN),
        timeout=ROTATION_TIMEOUT_SECONDS,
        variables={
            "HEADER": HEADER,
            "KEY": KEY,
            "LENGTH": str(LENGTH),
            "REGIONS": ",".join(regions),
            "TAGS": json.dumps({"Project": [env.project], "Environment": environments}, sort_keys=True),
        },
        skips=(
            ("CKV_AWS_117", "No VPC on purpose: it calls Secrets Manager, ELB and CloudFront APIs only (HTTPS)"),
            (
                "CKV_AWS_116",
                "Only Secrets Manager and CloudFormation invoke it, and a failure shows where they act (the "
                "secret's rotation status, the stack operation) with its reason in the function's log group",
            ),
            ("CKV_AWS_173", "Its variables name a header, a JSON key, regions and tags, no secret"),
        ),
    )
    second = t.add_resource(
        cloudformation.CustomResource(
            "OriginVerifySecondVersion",
            ServiceToken=GetAtt(function, "Arn"),
            ServiceTimeout=300,
            SecretId=Ref(secret),
        )
    )
    constructs.rotation(
        t, "OriginVerify", function=function, secret=Ref(secret), days=ROTATION_DAYS, depends_on=[second.title]
    )
    ctx.export(t, OriginVerify.ROTATION_FUNCTION, Ref(function))
    return t


def _web_acl_read(env: Environment, environments: list[str]) -> list[Any]:
    """Reading the pair's CloudFront web ACLs (us-east-1, named ``<project>-<env>-...``), where a
    distribution has one: UpdateDistribution sends the distribution's whole configuration, its
    WebACLId included, and CloudFront answers "InvalidWebACLId: Unable to verify read permissions on
    Web ACL" to a caller who may not read it (aws/aws-sdk-java#2901, hashicorp/terraform#17544; no AWS
    page says it either way, and the read is harmless: the ACL's rules, never a change)."""
    if not env.platform.waf.cloudfront:
        return []
    return [
        iam.allow(
            "ReadThePairsCloudFrontWebAcls",
            [wafv2_actions.GetWebACL],
            [
                Sub(
                    f"arn:${{AWS::Partition}}:wafv2:{CLOUDFRONT_REGION}:${{AWS::AccountId}}:global/webacl/"
                    f"{env.project}-{name}-*/*"
                )
                for name in environments
            ],
        )
    ]


def _change_statements(env: Environment, regions: list[str], environments: list[str]) -> list[Any]:
    """Find and change the pair's listener rules and distributions, by their tags."""
    tagged = [StringEquals({"aws:ResourceTag/Project": env.project, "aws:ResourceTag/Environment": environments})]
    return [
        # Describe calls of Elastic Load Balancing and cloudfront:ListDistributions have no
        # resource-level permissions (Service Authorization Reference): "*" only.
        iam.allow(
            "FindTheLoadBalancerRules",
            [
                elb_actions.DescribeLoadBalancers,
                elb_actions.DescribeTags,
                elb_actions.DescribeListeners,
                elb_actions.DescribeRules,
            ],
            ["*"],
        ),
        iam.allow(
            "ChangeThePairsListenerRules",
            [elb_actions.ModifyRule],
            [
                Sub("arn:${AWS::Partition}:elasticloadbalancing:%s:${AWS::AccountId}:listener-rule/app/*" % region)
                for region in regions
            ],
            conditions=tagged,
        ),
        iam.allow("FindTheDistributions", [cloudfront_actions.ListDistributions], ["*"]),
        iam.allow(
            "ReadDistributionTags",
            [cloudfront_actions.ListTagsForResource],
            [Sub("arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/*")],
        ),
        *_web_acl_read(env, environments),
        iam.allow(
            "ChangeThePairsDistributions",
            [
                cloudfront_actions.GetDistribution,
                cloudfront_actions.GetDistributionConfig,
                cloudfront_actions.UpdateDistribution,
            ],
            [Sub("arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/*")],
            conditions=tagged,
        ),
    ]
