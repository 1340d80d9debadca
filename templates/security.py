"""Security layer: who may talk to whom. CloudFront (or, with ``platform.ingress: internet``, the
internet) -> ALB -> each service on its own port -> the database port, and nothing else. Every rule
is its own resource with a description.

Behind CloudFront (the default) the load balancer's group admits HTTPS from CloudFront's
origin-facing addresses only: the AWS-managed prefix list ``com.amazonaws.global.cloudfront.origin-facing``
(CloudFront Developer Guide, "Restrict access to Application Load Balancers"; Amazon VPC User Guide,
"AWS-managed prefix lists"). A rule names a prefix list by id, which differs per region, and
CloudFormation has no lookup: a small custom resource reads the ids by name
(``ec2:DescribeManagedPrefixLists``) when the stack deploys, unless ``platform.cloudfront_prefix_list_id``
gives CloudFront's. A primary whose API name fails over by Route 53 (``dr.dns`` of its DR environment)
also admits Route 53's health checkers (``com.amazonaws.<region>.route53-healthchecks``) on HTTPS, in
a group of their own: the two lists weigh 55 and 25 rules, over the 60 inbound rules of one group."""

from __future__ import annotations

from typing import Any

import awacs.ec2 as awsec2
from troposphere import GetAtt, Sub, Template, cloudformation, ec2

from infra_templates import constructs, iam
from infra_templates.config import Environment
from infra_templates.layer import LayerContext
from templates.contracts import Keys, Network, Security, alb_health_checked, for_load_balancer

HTTPS = 443
HTTP = 80
# AWS-managed prefix lists by name (Amazon VPC User Guide, "AWS-managed prefix lists"): the
# attribute of the lookup that returns each id.
CLOUDFRONT_ORIGIN_FACING = "com.amazonaws.global.cloudfront.origin-facing"
ROUTE53_HEALTH_CHECKS = "com.amazonaws.${AWS::Region}.route53-healthchecks"

LOOKUP_CODE = """\
import boto3
import cfnresponse


def handler(event, context):
    names = event["ResourceProperties"]["Names"]  # {attribute: managed prefix list name}
    try:
        ids = {}
        if event["RequestType"] in ("Create", "Update"):
            found = boto3.client("ec2").describe_managed_prefix_lists(
                Filters=[{"Name": "prefix-list-name", "Values": sorted(names.values())}]
            )["PrefixLists"]
            by_name = {item["PrefixListName"]: item["PrefixListId"] for item in found}
            ids = {attribute: by_name[name] for attribute, name in names.items()}
        cfnresponse.send(event, context, cfnresponse.SUCCESS, ids, "managed-prefix-lists")
    except Exception as error:  # CloudFormation must hear of any failure, or it waits
        print(repr(error))
        cfnresponse.send(event, context, cfnresponse.FAILED, {}, "managed-prefix-lists", reason=repr(error)[:200])
"""


def build(env: Environment) -> Template:
    ctx = LayerContext(env, "security")
    t = ctx.new_template("security groups of the load balancer and the database")
    vpc = ctx.import_value(Network.VPC_ID)

    lookup = _prefix_lists(t, ctx)
    albs = [_alb_group(t, ctx, index, lookup) for index in range(len(env.load_balancer_groups()))]
    if alb_health_checked(env):
        checkers = t.add_resource(
            constructs.security_group(
                "AlbHealthCheckSecurityGroup",
                f"{ctx.stack_name} load balancer: HTTPS from Route 53 health checkers only (DNS failover)",
                vpc,
                f"{ctx.stack_name}-alb-health-checks",
            )
        )
        t.add_resource(
            ec2.SecurityGroupIngress(
                "AlbHealthCheckIngress",
                GroupId=GetAtt(checkers, "GroupId"),
                IpProtocol="tcp",
                FromPort=HTTPS,
                ToPort=HTTPS,
                SourcePrefixListId=GetAtt(lookup, "Route53HealthChecks"),
                Description="HTTPS from Route 53 health checkers (route53-healthchecks prefix list)",
            )
        )
        ctx.export(t, Security.ALB_HEALTH_CHECK_SECURITY_GROUP, GetAtt(checkers, "GroupId"))

    database = t.add_resource(
        constructs.security_group(
            "DatabaseSecurityGroup",
            f"{ctx.stack_name} database: {env.database.engine} port from the services that may use it",
            vpc,
            f"{ctx.stack_name}-database",
        )
    )

    # Each service's own group and its path ALB -> service -> database live in the service's
    # stack: a service then adds nothing here, and fifty of them stay within a stack's limits.
    for index, alb in enumerate(albs):
        ctx.export(t, for_load_balancer(Security.ALB_SECURITY_GROUP, index), GetAtt(alb, "GroupId"))
    ctx.export(t, Security.DATABASE_SECURITY_GROUP, GetAtt(database, "GroupId"))
    return t


def _prefix_lists(t: Template, ctx: LayerContext) -> cloudformation.CustomResource | None:
    """The custom resource whose attributes are the ids of the managed prefix lists this stack's
    rules name (``CloudFront``, ``Route53HealthChecks``), or None when it names none to look up."""
    env = ctx.env
    names: dict[str, Any] = {}
    if env.platform.ingress == "cloudfront" and env.platform.cloudfront_prefix_list_id is None:
        names["CloudFront"] = CLOUDFRONT_ORIGIN_FACING
    if alb_health_checked(env):
        names["Route53HealthChecks"] = Sub(ROUTE53_HEALTH_CHECKS)
    if not names:
        return None
    function, _ = constructs.inline_function(
        t,
        env,
        "PrefixListLookup",
        code=LOOKUP_CODE,
        description=f"Reads the ids of the AWS-managed prefix lists {ctx.stack_name}'s rules name",
        role_description=f"Reads the AWS-managed prefix lists' ids for {ctx.stack_name}, nothing else",
        policy_name="read-managed-prefix-lists",
        statements=[
            # The service authorization reference lists no resource type for
            # ec2:DescribeManagedPrefixLists: it is granted on "*" or not at all.
            iam.allow("ReadManagedPrefixLists", [awsec2.DescribeManagedPrefixLists], ["*"]),
        ],
        log_group_title="PrefixListLookupLogGroup",
        log_retention_days=env.platform.log_retention_days,
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
    return t.add_resource(
        cloudformation.CustomResource(
            "ManagedPrefixLists", ServiceToken=GetAtt(function, "Arn"), ServiceTimeout=300, Names=names
        )
    )


def _alb_group(
    t: Template, ctx: LayerContext, index: int, lookup: cloudformation.CustomResource | None
) -> ec2.SecurityGroup:
    """The security group of the environment's ``index``-th load balancer (its own: the outbound
    rules to its services count against each group's quota) and its inbound rules. The first
    keeps the logical IDs of an environment with one load balancer; the others add ``2``, ``3``..."""
    env = ctx.env
    suffix = "" if index == 0 else str(index + 1)
    alb = t.add_resource(
        constructs.security_group(
            f"AlbSecurityGroup{suffix}",
            f"{ctx.stack_name} load balancer{' ' + suffix if suffix else ''}: HTTPS from "
            + ("the internet" if env.platform.ingress == "internet" else "CloudFront only"),
            ctx.import_value(Network.VPC_ID),
            f"{ctx.stack_name}-alb{suffix}",
        )
    )
    _alb_ingress(t, env, alb, HTTPS, "HTTPS from viewers", lookup=lookup, suffix=suffix)
    if env.platform.listens_http:
        _alb_ingress(t, env, alb, HTTP, "HTTP, answered only with a redirect to HTTPS", lookup=lookup, suffix=suffix)
    if any(env.strategy_of(s) == "blue-green" for s in env.load_balancer_groups()[index]):
        _test_listener_ingress(t, ctx, alb, suffix)
    return alb


def _test_listener_ingress(t: Template, ctx: LayerContext, alb: ec2.SecurityGroup, suffix: str) -> None:
    """The blue/green test listener answers the VPC only (a bastion, a VPN, a test task), never
    the internet: it serves a release before anyone approved it."""
    env = ctx.env
    port = env.deployment.test_listener_port
    t.add_resource(
        ec2.SecurityGroupIngress(
            f"AlbTestListenerIngress{suffix}",
            GroupId=GetAtt(alb, "GroupId"),
            IpProtocol="tcp",
            FromPort=port,
            ToPort=port,
            CidrIp=str(env.network.cidr),
            Description="Blue/green test listener, from inside the VPC only",
        )
    )


def _alb_ingress(
    t: Template,
    env: Environment,
    alb: ec2.SecurityGroup,
    port: int,
    what: str,
    *,
    lookup: cloudformation.CustomResource | None,
    suffix: str = "",
) -> None:
    source: dict[str, Any]
    if env.platform.ingress == "cloudfront":
        given = env.platform.cloudfront_prefix_list_id
        assert given is not None or lookup is not None
        source = {"SourcePrefixListId": given if given is not None else GetAtt(lookup, "CloudFront")}
    else:
        source = {"CidrIp": "0.0.0.0/0"}
    rule = ec2.SecurityGroupIngress(
        f"Alb{'Https' if port == HTTPS else 'Http'}Ingress{suffix}",
        GroupId=GetAtt(alb, "GroupId"),
        IpProtocol="tcp",
        FromPort=port,
        ToPort=port,
        Description=what + (" (CloudFront origin-facing prefix list)" if env.platform.ingress == "cloudfront" else ""),
        **source,
    )
    if port == HTTP and env.platform.ingress == "internet":
        constructs.skip_checkov(
            rule,
            (
                "CKV_AWS_260",
                "a public website's ALB listens on port 80 only to answer with a permanent redirect to HTTPS "
                "(that listener has no forward action); platform.http_redirect: false closes it",
            ),
        )
    t.add_resource(rule)
