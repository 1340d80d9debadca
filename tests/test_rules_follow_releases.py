"""No listener rule sends traffic to a target group that may be empty: a blue/green service's two
target groups take turns holding its tasks, and only the rules its deployment moves between them
follow the live one (ECS: the service's ``AdvancedConfiguration`` ProductionListenerRule and
TestListenerRule, "Amazon ECS blue/green deployments"; CodeDeploy: the rules of the listeners its
deployment group's TargetGroupPairInfo names). A rule that forwards to both colours at once (as the
Route 53 health-check rule once did) sends half its requests to the idle, empty colour, where the
load balancer answers 503 ("each target group receives half of the traffic" at equal weights,
AWS::ElasticLoadBalancingV2::ListenerRule ForwardConfig)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import BUILT, resources

RULE = "AWS::ElasticLoadBalancingV2::ListenerRule"


def _forwarded(rule: dict[str, Any]) -> list[tuple[Any, int]]:
    """(target group, weight) of every forward action of ``rule``."""
    found: list[tuple[Any, int]] = []
    for action in rule["Properties"]["Actions"]:
        if action["Type"] != "forward":
            continue
        if "TargetGroupArn" in action:
            found.append((action["TargetGroupArn"], 1))
        for group in action.get("ForwardConfig", {}).get("TargetGroups", []):
            found.append((group["TargetGroupArn"], group.get("Weight", 1)))
    return found


def _moved_rules(body: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The blue/green target groups of a service stack (their logical ids) and the rules its
    deployment moves between them."""
    groups: set[str] = set()
    moved: set[str] = set()
    for service in resources(body, "AWS::ECS::Service").values():
        for balancer in service["Properties"].get("LoadBalancers", []):
            advanced = balancer.get("AdvancedConfiguration")
            if advanced is None:
                continue
            groups |= {balancer["TargetGroupArn"]["Ref"], advanced["AlternateTargetGroupArn"]["Ref"]}
            moved |= {advanced["ProductionListenerRule"]["Ref"], advanced["TestListenerRule"]["Ref"]}
    rules = resources(body, RULE)
    for group in resources(body, "AWS::CodeDeploy::DeploymentGroup").values():
        for pair in group["Properties"]["LoadBalancerInfo"]["TargetGroupPairInfoList"]:
            names = {info["Name"]["Fn::GetAtt"][0] for info in pair["TargetGroups"]}
            groups |= names
            listeners = [*pair["ProdTrafficRoute"]["ListenerArns"], *pair["TestTrafficRoute"]["ListenerArns"]]
            moved |= {
                logical
                for logical, rule in rules.items()
                if rule["Properties"]["ListenerArn"] in listeners
                and {g["Ref"] for g, _ in _forwarded(rule) if "Ref" in g} & names
            }
    return groups, moved


def _check(stacks: dict[str, dict[str, Any]]) -> int:
    checked = 0
    for env, layers in stacks.items():
        for layer, stack in layers.items():
            groups, moved = _moved_rules(stack.body)
            for logical, rule in resources(stack.body, RULE).items():
                targets = _forwarded(rule)
                colours = [(g, w) for g, w in targets if isinstance(g, dict) and g.get("Ref") in groups]
                if not colours:
                    continue
                checked += 1
                # only a rule the deployment moves may reach a colour...
                assert logical in moved, f"{env}/{layer} {logical} forwards to {colours} but no release moves it"
                # ...and it sends traffic to one colour at a time (the template's weights: 1 and 0)
                assert sum(1 for _, weight in colours if weight > 0) == 1, f"{env}/{layer} {logical}: {colours}"
    return checked


def test_no_rule_forwards_to_a_colour_its_release_does_not_move() -> None:
    assert _check(BUILT.stacks) >= 2  # prod's blue/green web services, at least


def test_the_same_holds_when_codedeploy_releases(codedeploy_built) -> None:
    assert _check(codedeploy_built.stacks) >= 2


def test_the_check_catches_a_rule_that_forwards_to_both_colours() -> None:
    """The former Route 53 health-check rule: both colours at weight 1, moved by no release."""
    body = BUILT.stacks["prod"]["svc-api"].body
    old = {
        "Type": RULE,
        "Properties": {
            "ListenerArn": {"Fn::ImportValue": "shop-prod-platform-HttpsListenerArn"},
            "Priority": 50000,
            "Conditions": [],
            "Actions": [
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [
                            {"TargetGroupArn": {"Ref": "TargetGroup"}, "Weight": 1},
                            {"TargetGroupArn": {"Ref": "GreenTargetGroup"}, "Weight": 1},
                        ]
                    },
                }
            ],
        },
    }

    class _Stack:
        def __init__(self, body: dict[str, Any]) -> None:
            self.body = body

    broken = {**body, "Resources": {**body["Resources"], "HealthCheckListenerRule": old}}
    with pytest.raises(AssertionError, match="HealthCheckListenerRule forwards to"):
        _check({"prod": {"svc-api": _Stack(broken)}})
