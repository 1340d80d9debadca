"""Security layer: the chain internet -> ALB -> service port -> database port, and nothing else."""

from __future__ import annotations

import pytest
from conftest import ENVIRONMENTS, build_environment, edit_yaml, resources

from infra_templates.config import load_environment
from templates import security


def group_id(ref: dict) -> str:
    return ref["Fn::GetAtt"][0]


def rules(body: dict, kind: str) -> list[dict]:
    return [r["Properties"] for r in resources(body, f"AWS::EC2::SecurityGroup{kind}").values()]


CLOUDFRONT = {"Fn::GetAtt": ["ManagedPrefixLists", "CloudFront"]}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_alb_accepts_https_from_cloudfront_only_by_default(stacks, environments, env) -> None:
    body = stacks[env]["security"].body
    into_alb = [r for r in rules(body, "Ingress") if group_id(r["GroupId"]) == "AlbSecurityGroup"]
    test_listener = [(8443, 8443, str(environments[env].network.cidr))] if env != "dev" else []  # VPC only
    assert sorted((r["FromPort"], r["ToPort"], r.get("CidrIp") or r["SourcePrefixListId"]) for r in into_alb) == sorted(
        [(443, 443, CLOUDFRONT), *test_listener], key=str
    )
    names = body["Resources"]["ManagedPrefixLists"]["Properties"]["Names"]
    assert names["CloudFront"] == "com.amazonaws.global.cloudfront.origin-facing"


def test_alb_accepts_https_and_http_from_the_internet_with_ingress_internet(settings_dir) -> None:
    edit_yaml(settings_dir / "staging.yaml", platform__ingress="internet")
    body = build_environment(settings_dir, "staging")["security"].body
    into_alb = [r for r in rules(body, "Ingress") if group_id(r["GroupId"]) == "AlbSecurityGroup"]
    assert sorted((r["FromPort"], r["CidrIp"]) for r in into_alb) == [
        (80, "0.0.0.0/0"),
        (443, "0.0.0.0/0"),
        (8443, "10.20.0.0/16"),
    ]
    assert "ManagedPrefixLists" not in body["Resources"]  # nothing to look up


def service_rules(stacks, env: str, service: str, kind: str) -> list[dict]:
    return rules(stacks[env][f"svc-{service}"].body, kind)


ALB_GROUP = {"Fn::ImportValue": "shop-{env}-security-AlbSecurityGroupId"}
DATABASE_GROUP = {"Fn::ImportValue": "shop-{env}-security-DatabaseSecurityGroupId"}
OWN_GROUP = {"Fn::GetAtt": ["ServiceSecurityGroup", "GroupId"]}


def imported(template: dict, env: str) -> dict:
    return {"Fn::ImportValue": template["Fn::ImportValue"].format(env=env)}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_service_accepts_its_port_only_from_the_alb(stacks, environments, env) -> None:
    alb = imported(ALB_GROUP, env)
    for name, service in environments[env].services.items():
        ingress = [r for r in service_rules(stacks, env, name, "Ingress") if r["GroupId"] == OWN_GROUP]
        alb_out = [r for r in service_rules(stacks, env, name, "Egress") if r["GroupId"] == alb]
        if service.kind != "web":  # not behind the load balancer: nothing in its own stack opens it
            assert ingress == [] and alb_out == []  # a backend opens to its callers: test_kinds.py
            continue
        assert [(r["FromPort"], r["ToPort"], r["SourceSecurityGroupId"]) for r in ingress] == [
            (service.port, service.port, alb)
        ]
        assert [(r["FromPort"], r["DestinationSecurityGroupId"]) for r in alb_out] == [(service.port, OWN_GROUP)]
        (group,) = resources(stacks[env][f"svc-{name}"].body, "AWS::EC2::SecurityGroup").values()
        assert group["Properties"]["SecurityGroupEgress"][0]["CidrIp"] == "127.0.0.1/32"  # closed by default


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_database_port_is_reachable_only_from_services_that_may_use_it(stacks, environments, env) -> None:
    database, port = imported(DATABASE_GROUP, env), environments[env].database.port
    allowed = []
    for name in environments[env].services:
        into_db = [r for r in service_rules(stacks, env, name, "Ingress") if r["GroupId"] == database]
        if into_db:
            allowed.append(name)
            assert [(r["FromPort"], r["ToPort"], r["SourceSecurityGroupId"]) for r in into_db] == [
                (port, port, OWN_GROUP)
            ]
    assert allowed == [n for n, s in environments[env].services.items() if s.database_access] == ["api", "nightly"]
    body = stacks[env]["security"].body  # and nothing else opens the database's group
    assert not [r for r in rules(body, "Ingress") if group_id(r["GroupId"]) == "DatabaseSecurityGroup"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_services_reach_out_only_on_https_and_the_database_port(stacks, environments, env) -> None:
    for name, service in environments[env].services.items():
        out = sorted(r["FromPort"] for r in service_rules(stacks, env, name, "Egress") if r["GroupId"] == OWN_GROUP)
        assert out == sorted([443] + ([environments[env].database.port] if service.database_access else []))


def test_the_security_stack_does_not_grow_with_the_services(settings_dir) -> None:
    before = build_environment(settings_dir, "prod")["security"].body
    edit_yaml(
        settings_dir / "defaults.yaml",
        services__worker={
            "port": 7000,
            "cpu": 256,
            "memory": 512,
            "desired_count": 1,
            "autoscaling": {"min": 1, "max": 2},
            "routing": {"paths": ["/jobs/*"]},
            "database_access": True,
        },
    )
    assert build_environment(settings_dir, "prod")["security"].body == before


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_group_starts_closed_and_every_rule_is_described(stacks, env) -> None:
    body = stacks[env]["security"].body
    for name, group in resources(body, "AWS::EC2::SecurityGroup").items():
        (egress,) = group["Properties"]["SecurityGroupEgress"]
        assert egress["CidrIp"] == "127.0.0.1/32", name  # replaces CloudFormation's allow-all default
        assert "SecurityGroupIngress" not in group["Properties"], name
    for rule in rules(body, "Ingress") + rules(body, "Egress"):
        assert len(rule["Description"]) > 10


def test_a_given_prefix_list_id_is_used_as_is_and_nothing_is_looked_up(settings_dir) -> None:
    edit_yaml(settings_dir / "staging.yaml", platform__cloudfront_prefix_list_id="pl-4fa04526")
    body = security.build(load_environment("staging", settings_dir)).to_dict()
    into_alb = [
        r for r in rules(body, "Ingress") if group_id(r["GroupId"]) == "AlbSecurityGroup" and r["FromPort"] != 8443
    ]
    assert {r["SourcePrefixListId"] for r in into_alb} == {"pl-4fa04526"}
    assert all("CidrIp" not in r for r in into_alb)
    assert all("Metadata" not in r for r in resources(body, "AWS::EC2::SecurityGroupIngress").values())
    assert "ManagedPrefixLists" not in body["Resources"] and "PrefixListLookup" not in body["Resources"]


def test_closing_port_80_removes_its_rule_and_its_skip(settings_dir) -> None:
    edit_yaml(settings_dir / "staging.yaml", platform__ingress="internet", platform__http_redirect=False)
    staging = build_environment(settings_dir, "staging")
    body = staging["security"].body
    assert "AlbHttpIngress" not in body["Resources"]
    assert "HttpRedirectListener" not in staging["platform"].body["Resources"]
