"""Every fixed-cost item is a setting: Container Insights, each WAF web ACL, the database's pause
(and alarms that understand a paused database), NAT gateways per zone or one."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import edit_yaml, refusal, resources

from infra_templates.config import load_environment
from templates import monitoring, network, platform


def _alarm(body: dict, name: str) -> dict:
    return body["Resources"][name]["Properties"]


@pytest.mark.parametrize("mode", ["enabled", "enhanced", "disabled"])
def test_container_insights_is_a_setting(settings_dir: Path, mode: str) -> None:
    edit_yaml(settings_dir / "staging.yaml", platform__container_insights=mode)
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
