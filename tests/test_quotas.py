"""AWS's default quotas across stacks (quotas.py), the regions the deployer role must allow
(regions.py), and the settings refused before the output would exceed a quota."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import SETTINGS, edit_yaml, refusal

import generate
from infra_templates import quotas, regions
from infra_templates.checks import load_manifests
from infra_templates.config import load_environment

# --- a synthetic output folder: a platform stack and service stacks importing its listener -------


def _write(folder: Path, stacks: dict[str, dict[str, Any]], layers: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    described = []
    for name, body in stacks.items():
        (folder / f"{name}.json").write_text(json.dumps(body), encoding="utf-8")
        described.append(
            {
                "name": name,
                "region": "eu-west-1",
                "layer": (layers or {}).get(name, name),
                "templates": {"yaml": f"{name}.yaml", "json": f"{name}.json"},
            }
        )
    path = folder / "manifest.json"
    path.write_text(json.dumps({"stacks": described}), encoding="utf-8")
    return path


def _platform() -> dict[str, Any]:
    return {
        "Resources": {
            "LoadBalancer": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {}},
            "HttpsListener": {
                "Type": "AWS::ElasticLoadBalancingV2::Listener",
                "Properties": {"LoadBalancerArn": {"Ref": "LoadBalancer"}, "Certificates": [{"CertificateArn": "x"}]},
            },
        },
        "Outputs": {"Listener": {"Value": {"Ref": "HttpsListener"}, "Export": {"Name": "p-HttpsListenerArn"}}},
    }


def _service(groups: int, values: int = 1) -> dict[str, Any]:
    resources: dict[str, Any] = {
        f"Group{i}": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": {}} for i in range(groups)
    }
    resources["Rule"] = {
        "Type": "AWS::ElasticLoadBalancingV2::ListenerRule",
        "Properties": {
            "ListenerArn": {"Fn::ImportValue": "p-HttpsListenerArn"},
            "Conditions": [
                {"Field": "path-pattern", "PathPatternConfig": {"Values": [f"/{v}" for v in range(values)]}}
            ],
            "Actions": [
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [{"TargetGroupArn": {"Ref": f"Group{i}"}} for i in range(groups)]
                    },
                }
            ],
        },
    }
    return {"Resources": resources}


def _problems(path: Path) -> list[str]:
    return quotas.check_quotas([(path, json.loads(path.read_text(encoding="utf-8")))])


def test_target_groups_and_rules_count_across_stacks_against_the_one_load_balancer(tmp_path: Path) -> None:
    within = {"platform": _platform(), **{f"svc-{i}": _service(2) for i in range(50)}}
    assert _problems(_write(tmp_path / "within", within)) == []
    over = {"platform": _platform(), **{f"svc-{i}": _service(2) for i in range(51)}}
    [problem] = _problems(_write(tmp_path / "over", over))
    assert "102 target groups" in problem
    assert "'Target Groups per Application Load Balancer' is 100" in problem
    assert quotas.ELB_QUOTAS in problem


def _distribution(behaviours: int) -> dict[str, Any]:
    config = {
        "DefaultCacheBehavior": {"TargetOriginId": "a"},
        "CacheBehaviors": [{"PathPattern": f"/p{i}/*", "TargetOriginId": "a"} for i in range(behaviours)],
    }
    return {"Resources": {"Distribution": {"Type": "AWS::CloudFront::Distribution", "Properties": {
        "DistributionConfig": config}}}}  # fmt: skip


def test_cache_behaviours_per_distribution_count_the_default(tmp_path: Path) -> None:
    assert _problems(_write(tmp_path / "within", {"edge": _distribution(74)})) == []
    [problem] = _problems(_write(tmp_path / "over", {"edge": _distribution(75)}))
    assert "76 cache behaviours (the default one included) on edge Distribution" in problem
    assert "'Cache behaviors per distribution' is 75" in problem and quotas.CLOUDFRONT_QUOTAS in problem


def test_rules_per_load_balancer(tmp_path: Path) -> None:
    over = {"platform": _platform(), **{f"svc-{i}": _service(1) for i in range(101)}}
    problems = _problems(_write(tmp_path, over))
    assert any("101 listener rules" in p and "Rules per Application Load Balancer" in p for p in problems)


def test_condition_values_and_target_groups_per_action(tmp_path: Path) -> None:
    problems = _problems(_write(tmp_path, {"platform": _platform(), "svc": _service(6, values=6)}))
    assert any("'Condition values per rule' is 5" in p for p in problems)
    assert any("'Target Groups per Action per Application Load Balancer' is 5" in p for p in problems)


def _group_with(ingress: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Resources": {
            "Group": {
                "Type": "AWS::EC2::SecurityGroup",
                "Properties": {"SecurityGroupIngress": ingress, "SecurityGroupEgress": [{"CidrIp": "127.0.0.1/32"}]},
            }
        }
    }


def test_a_prefix_list_counts_as_its_weight_in_a_security_group(tmp_path: Path) -> None:
    """The CloudFront origin-facing list weighs 55: one rule fits in 60, two do not."""
    one = _group_with([{"SourcePrefixListId": "pl-4fa04526", "FromPort": 443}])
    assert _problems(_write(tmp_path / "one", {"security": one})) == []
    two = _group_with([{"SourcePrefixListId": "pl-4fa04526", "FromPort": p} for p in (80, 443)])
    [problem] = _problems(_write(tmp_path / "two", {"security": two}))
    assert "110 inbound rules" in problem and "'Inbound or outbound rules per security group' is 60" in problem


def test_rules_another_stack_adds_to_a_group_count_against_it(tmp_path: Path) -> None:
    security = _group_with([])
    security["Outputs"] = {"G": {"Value": {"Fn::GetAtt": ["Group", "GroupId"]}, "Export": {"Name": "s-GroupId"}}}
    services = {
        f"svc-{i}": {
            "Resources": {
                "Egress": {
                    "Type": "AWS::EC2::SecurityGroupEgress",
                    "Properties": {"GroupId": {"Fn::ImportValue": "s-GroupId"}},
                }
            }
        }
        for i in range(60)
    }
    [problem] = _problems(_write(tmp_path, {"security": security, **services}))
    assert "61 outbound rules" in problem and "on security group Group of security" in problem


def test_security_groups_per_network_interface(tmp_path: Path) -> None:
    service = {
        "Resources": {
            "Service": {
                "Type": "AWS::ECS::Service",
                "Properties": {"NetworkConfiguration": {"AwsvpcConfiguration": {"SecurityGroups": list("abcdef")}}},
            }
        }
    }
    [problem] = _problems(_write(tmp_path, {"svc": service}))
    assert "'Security groups per network interface' is 5" in problem


def test_a_backends_tasks_count_against_its_cloud_map_service_twice_while_a_release_rolls(tmp_path: Path) -> None:
    def backend(maximum: int) -> dict[str, Any]:
        return {
            "Resources": {
                "Service": {
                    "Type": "AWS::ECS::Service",
                    "Properties": {
                        "DeploymentConfiguration": {"MaximumPercent": 200},
                        "ServiceConnectConfiguration": {"Enabled": True, "Services": [{"PortName": "http"}]},
                    },
                },
                "ScalableTarget": {
                    "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
                    "Properties": {
                        "MaxCapacity": maximum,
                        "ResourceId": {"Fn::Join": ["/", ["service", "c", {"Fn::GetAtt": ["Service", "Name"]}]]},
                    },
                },
            }
        }

    assert _problems(_write(tmp_path / "ok", {"svc": backend(500)})) == []
    [problem] = _problems(_write(tmp_path / "over", {"svc": backend(501)}))
    assert "1002 tasks registered at most" in problem and "'Instances per service' is 1000" in problem
    assert quotas.CLOUD_MAP_QUOTAS in problem


def test_the_shipped_output_is_within_every_quota(tmp_path: Path) -> None:
    assert generate.run_build(None, SETTINGS, tmp_path, quiet=True) == 0
    manifests = load_manifests(tmp_path)
    assert quotas.check_quotas(manifests) == []
    assert regions.check_regions(manifests) == []


# --- regions the deployer role must allow ------------------------------------------------------


def _deployer(allowed: list[str]) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Condition": {"StringEquals": {"aws:RequestedRegion": allowed}}}
    return {
        "Resources": {
            "Policy": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"PolicyDocument": {"Statement": [statement]}}}
        }
    }


def _replicated_secret(region: str) -> dict[str, Any]:
    return {
        "Resources": {
            "Secret": {"Type": "AWS::SecretsManager::Secret", "Properties": {"ReplicaRegions": [{"Region": region}]}}
        }
    }


def test_a_secret_replicated_where_the_deployer_may_not_act_is_a_problem(tmp_path: Path) -> None:
    stacks = {"deployer": _deployer(["eu-west-1", "us-east-1"]), "data": _replicated_secret("eu-central-1")}
    path = _write(tmp_path / "fenced", stacks)
    [problem] = regions.check_regions([(path, json.loads(path.read_text()))])
    assert "data acts in eu-central-1" in problem
    stacks["deployer"] = _deployer(["eu-central-1", "eu-west-1", "us-east-1"])
    path = _write(tmp_path / "allowed", stacks)
    assert regions.check_regions([(path, json.loads(path.read_text()))]) == []


def test_prod_deployer_allows_the_region_its_database_secret_replicates_to(stacks) -> None:
    replicas = regions.acting_regions(stacks["prod"]["data"].body)
    assert replicas == {"eu-central-1"}  # dr's region: the secret replicates there with dr's key
    allowed = regions.allowed_regions(stacks["prod"]["deployer"].body)
    assert allowed is not None and replicas <= allowed


# --- settings refused past a quota -------------------------------------------------------------


def _with_services(settings_dir: Path, count: int, **extra: Any) -> None:
    path = settings_dir / "staging.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    services = data.setdefault("services", {})
    for i in range(count - 2):  # web and api come from defaults.yaml (with a backend, a worker and a job)
        services[f"s{i:03d}"] = {
            "port": 8080,
            "cpu": 256,
            "memory": 512,
            "desired_count": 1,
            "autoscaling": {"min": 1, "max": 2},
            "routing": {"paths": [f"/s{i:03d}/*"]},
            "health_check": {"path": "/healthz"},
            **extra,
        }
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_fifty_blue_green_services_fit_one_load_balancer(settings_dir: Path) -> None:
    _with_services(settings_dir, 50)
    env = load_environment("staging", settings_dir)
    assert len(env.blue_green_services) == 50
    # the load balancer holds the web services only: the backend, the worker and the job are not on it
    assert env.load_balancer_groups() == [sorted(env.web_services)]


def test_past_a_load_balancers_quotas_the_services_split_over_more(settings_dir: Path, tmp_path: Path) -> None:
    """51 blue-green services need 102 target groups: a second load balancer, with its own
    security group, listeners and exports; each service's stack uses its own load balancer's."""
    _with_services(settings_dir, 51)
    # behind CloudFront a second load balancer is refused (test_edge_routes.py): open it to the internet
    edit_yaml(settings_dir / "staging.yaml", platform__ingress="internet")
    env = load_environment("staging", settings_dir)
    groups = env.load_balancer_groups()
    assert [len(g) for g in groups] == [50, 1]
    assert groups == [sorted(env.web_services)[:50], sorted(env.web_services)[50:]]  # by name
    [moved] = groups[1]
    assert generate.run_build(["staging"], settings_dir, tmp_path / "out", quiet=True) == 0
    folder = tmp_path / "out" / "staging"

    def body(name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
        return data

    platform, security, service = body("platform"), body("security"), body(f"svc-{moved}")
    for logical in ("LoadBalancer2", "HttpsListener2", "TestListener2", "WebAclAssociation2"):
        assert logical in platform["Resources"], logical
    assert "HttpRedirectListener2" in platform["Resources"]  # ingress internet: the port-80 redirect
    assert {"HttpsListenerArn2", "TestListenerArn2", "LoadBalancerFullName2"} <= set(platform["Outputs"])
    assert "AlbSecurityGroup2" in security["Resources"] and "AlbSecurityGroupId2" in security["Outputs"]
    rule = service["Resources"]["ListenerRule"]["Properties"]["ListenerArn"]
    assert rule == {"Fn::ImportValue": "shop-staging-platform-HttpsListenerArn2"}
    egress = service["Resources"]["AlbToServiceEgress"]["Properties"]["GroupId"]
    assert egress == {"Fn::ImportValue": "shop-staging-security-AlbSecurityGroupId2"}
    assert "LoadBalancer2" not in json.dumps(body("svc-api"))
    manifests = [(folder / "manifest.json", json.loads((folder / "manifest.json").read_text(encoding="utf-8")))]
    assert quotas.check_quotas(manifests) == []


def test_what_no_split_fixes_is_refused_with_the_quota(settings_dir: Path) -> None:
    path = settings_dir / "staging.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    data.setdefault("services", {})["web"] = {"autoscaling": {"min": 1, "max": 501}}  # blue-green: 1,002 targets
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    message = refusal(settings_dir)
    assert "staging.yaml: services.web: 1002 targets at most on one load balancer" in message
    assert "AWS quota 'Targets per Application Load Balancer' is 1000" in message


def test_sixty_one_services_reaching_the_database_are_refused(settings_dir: Path) -> None:
    _with_services(settings_dir, 61, database_access=True)  # 59 added, api and the nightly job
    message = refusal(settings_dir)
    assert "61 inbound rules on the database's security group" in message
    assert "'Inbound or outbound rules per security group' is 60" in message


def test_a_rule_of_more_than_five_condition_values_is_refused(settings_dir: Path) -> None:
    path = settings_dir / "staging.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    data.setdefault("services", {})["web"] = {
        "routing": {"paths": ["/a", "/b", "/c"], "hosts": ["a.example.com", "b.example.com", "c.example.com"]}
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert "AWS quota 'Condition values per rule' is 5" in refusal(settings_dir)


@pytest.mark.parametrize("redirect", [True, False])
def test_cloudfront_ingress_fits_the_groups_inbound_rules_whatever_the_http_redirect(
    settings_dir: Path, redirect: bool
) -> None:
    """Behind CloudFront the load balancer has no port 80 (CloudFront reaches the origin over HTTPS
    only), so the origin-facing list (weight 55) is named once: 56 of 60 with the test listener.
    Before, the redirect's second rule made 111 and refused the default combination."""
    edit_yaml(settings_dir / "staging.yaml", platform__http_redirect=redirect)
    env = load_environment("staging", settings_dir)
    assert (env.platform.ingress, env.platform.listens_http) == ("cloudfront", False)


def test_the_internet_ingress_with_the_redirect_has_both_ports(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", platform__ingress="internet")
    assert load_environment("staging", settings_dir).platform.listens_http
