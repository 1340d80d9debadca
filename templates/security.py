"""Security layer: who may talk to whom. Internet (or CloudFront) -> ALB -> each service on its own
port -> the database port, and nothing else. Every rule is its own resource with a description."""

from __future__ import annotations

from typing import Any

from troposphere import GetAtt, Template, ec2

from infra_templates import constructs
from infra_templates.config import Environment
from infra_templates.layer import LayerContext
from templates.contracts import Network, Security, for_load_balancer

HTTPS = 443
HTTP = 80


def build(env: Environment) -> Template:
    ctx = LayerContext(env, "security")
    t = ctx.new_template("security groups of the load balancer and the database")
    vpc = ctx.import_value(Network.VPC_ID)

    albs = [_alb_group(t, ctx, index) for index in range(len(env.load_balancer_groups()))]

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


def _alb_group(t: Template, ctx: LayerContext, index: int) -> ec2.SecurityGroup:
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
    _alb_ingress(t, env, alb, HTTPS, "HTTPS from viewers", suffix=suffix)
    if env.platform.http_redirect:
        _alb_ingress(t, env, alb, HTTP, "HTTP, answered only with a redirect to HTTPS", suffix=suffix)
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
    t: Template, env: Environment, alb: ec2.SecurityGroup, port: int, what: str, *, suffix: str = ""
) -> None:
    source: dict[str, Any]
    if env.platform.ingress == "cloudfront":
        source = {"SourcePrefixListId": env.platform.cloudfront_prefix_list_id}
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
