"""The security group every kind shares: closed both ways, then out to HTTPS (AWS APIs) and, if
the service may, to the database; each kind opens its own way in."""

from __future__ import annotations

from typing import Any

from troposphere import Template, ec2

from infra_templates import constructs
from infra_templates.config import Service
from infra_templates.layer import LayerContext
from templates.contracts import Network, Security


def security_group(t: Template, ctx: LayerContext, description: str) -> ec2.SecurityGroup:
    """The service's group, closed both ways (rules are their own resources)."""
    return t.add_resource(
        constructs.security_group("ServiceSecurityGroup", description, ctx.import_value(Network.VPC_ID), ctx.stack_name)
    )


def outbound(t: Template, ctx: LayerContext, name: str, service: Service, own: Any) -> None:
    """HTTPS out (AWS APIs and HTTPS services) and, when the service may, the database port (with
    the database group's matching ingress, so the security stack does not grow with the services)."""
    env = ctx.env
    t.add_resource(
        ec2.SecurityGroupEgress(
            "ServiceHttpsEgress",
            GroupId=own,
            IpProtocol="tcp",
            FromPort=443,
            ToPort=443,
            CidrIp="0.0.0.0/0",
            Description=f"{name} calls AWS APIs (ECR, Logs, Secrets Manager) and HTTPS services",
        )
    )
    if service.database_access:
        constructs.allow_between(
            t,
            own,
            ctx.import_value(Security.DATABASE_SECURITY_GROUP),
            env.database.port,
            egress=("ServiceToDatabaseEgress", f"{name} connects to the database"),
            ingress=("DatabaseFromServiceIngress", f"{env.database.engine} port, from the {name} service"),
        )
