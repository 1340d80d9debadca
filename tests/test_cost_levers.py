"""Every fixed-cost item is a setting: Container Insights, each WAF web ACL, the database's pause
(and alarms that understand a paused database), NAT gateways per zone or one, the dashboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import build_all, edit_yaml, refusal, resources

from infra_templates import cost
from infra_templates.config import load_environment
from templates import monitoring, network, platform


def _alarm(body: dict, name: str) -> dict:
    return body["Resources"][name]["Properties"]


@pytest.mark.parametrize("mode", ["enabled", "enhanced", "disabled"])
def test_container_insights_is_a_setting(settings_dir: Path, mode: str) -> None:
    edit_yaml(settings_dir / "staging.yaml", platform__container_insights=mode)
    if mode == "disabled":  # a worker scaling on its backlog needs Container Insights (test_kinds.py)
        edit_yaml(settings_dir / "staging.yaml", services={"mailer": {"autoscaling": {"min": 1, "max": 1}}})
    body = platform.build(load_environment("staging", settings_dir)).to_dict()
    assert body["Resources"]["Cluster"]["Properties"]["ClusterSettings"] == [
        {"Name": "containerInsights", "Value": mode}
    ]
    skips = body["Resources"]["Cluster"].get("Metadata", {}).get("checkov", {}).get("skip", [])
    assert [s["id"] for s in skips] == (["CKV_AWS_65"] if mode == "disabled" else [])


def test_container_insights_refuses_other_values(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", platform__container_insights="on")
    message = refusal(settings_dir)
    assert "platform.container_insights" in message
    assert "enhanced" in message


def test_the_load_balancer_web_acl_may_go_only_behind_cloudfronts(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", platform__ingress="internet", platform__waf={"load_balancer": False})
    message = refusal(settings_dir)
    assert "staging.yaml: platform.waf.load_balancer" in message
    assert "ingress: cloudfront" in message


def test_without_cloudfronts_web_acl_the_load_balancer_keeps_its_own(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "staging.yaml",
        platform__ingress="cloudfront",
        platform__cloudfront_prefix_list_id="pl-4fa04526",
        platform__waf={"load_balancer": False, "cloudfront": False},
    )
    assert "platform.waf.load_balancer" in refusal(settings_dir)


def test_behind_cloudfront_the_load_balancer_web_acl_can_go(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "staging.yaml",
        platform__ingress="cloudfront",
        platform__cloudfront_prefix_list_id="pl-4fa04526",
        platform__waf={"load_balancer": False},
    )
    body = platform.build(load_environment("staging", settings_dir)).to_dict()
    assert not resources(body, "AWS::WAFv2::WebACL")
    assert not resources(body, "AWS::WAFv2::WebACLAssociation")
    assert resources(body, "AWS::ElasticLoadBalancingV2::LoadBalancer")


def test_nat_gateways_are_a_setting(settings_dir: Path) -> None:
    for choice, count in (("single", 1), ("per-zone", 2)):
        edit_yaml(settings_dir / "staging.yaml", network__nat_gateways=choice)
        body = network.build(load_environment("staging", settings_dir)).to_dict()
        assert len(resources(body, "AWS::EC2::NatGateway")) == count


@pytest.mark.parametrize(("min_acu", "missing"), [(0, "notBreaching"), (0.5, "breaching")])
def test_a_database_that_may_pause_does_not_alarm_on_silence(settings_dir: Path, min_acu: float, missing: str) -> None:
    """A paused Serverless v2 instance reports no CPU or memory ("Scaling to Zero ACUs with automatic
    pause and resume for Aurora Serverless v2"): silence is an outage only when it cannot pause."""
    capacity = {"mode": "serverless", "min_acu": min_acu, "max_acu": 4, "readers": 0}
    edit_yaml(settings_dir / "staging.yaml", database__capacity=capacity)
    body = monitoring.build(load_environment("staging", settings_dir)).to_dict()
    assert _alarm(body, "DatabaseCpuAlarm")["TreatMissingData"] == missing
    assert _alarm(body, "DatabaseMemoryAlarm")["TreatMissingData"] == missing
    assert _alarm(body, "DatabaseConnectionsAlarm")["TreatMissingData"] == "notBreaching"


def test_the_dashboard_is_a_setting(settings_dir: Path) -> None:
    """monitoring.dashboard: false drops the dashboard stack, and with it $3 a month (the dashboard's price)."""

    def stacks_and_cost() -> tuple[list[str], float]:
        built = build_all(settings_dir)
        manifest = json.loads(built.files["dev"]["manifest.json"])
        bodies = {s.name: s.body for s in [*built.project_stacks.values(), *built.stacks["dev"].values()]}
        return [s["name"] for s in manifest["stacks"]], cost.folder_estimate(manifest, bodies, "dev").total

    edit_yaml(settings_dir / "dev.yaml", monitoring__dashboard=True)  # the example's dev goes without
    with_it, full = stacks_and_cost()
    edit_yaml(settings_dir / "dev.yaml", monitoring__dashboard=False)
    without, cheaper = stacks_and_cost()
    assert "shop-dev-dashboard" in with_it
    assert set(with_it) - set(without) == {"shop-dev-dashboard"}
    assert full - cheaper == pytest.approx(cost.default_prices().fixed_price("dashboard_month", "eu-west-1"))
