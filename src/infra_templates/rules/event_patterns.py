"""EventBridge rules whose pattern can never match what the service sends."""

from __future__ import annotations

from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch

# The detail types each source sends (EventBridge events reference, "Amazon ECS events" and "AWS
# CodeDeploy events"); both also deliver their API calls through CloudTrail.
CLOUDTRAIL = "AWS API Call via CloudTrail"
DETAIL_TYPES = {
    "aws.ecs": {
        "ECS Task State Change",
        "ECS Container Instance State Change",
        "ECS Service Action",
        "ECS Deployment State Change",
        CLOUDTRAIL,
    },
    "aws.codedeploy": {
        "CodeDeploy Deployment State-change Notification",
        "CodeDeploy Instance State-change Notification",
        CLOUDTRAIL,
    },
}
ECS_DEPLOYMENT_EVENTS = {"SERVICE_DEPLOYMENT_IN_PROGRESS", "SERVICE_DEPLOYMENT_COMPLETED", "SERVICE_DEPLOYMENT_FAILED"}


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _exact(values: Any) -> list[str] | None:
    """The exact strings a pattern field matches, or None if it uses a content filter (prefix...)."""
    items = _listify(values)
    return [str(v) for v in items] if all(isinstance(v, str) for v in items) else None


def _sends_deployment_failed(service: dict[str, Any]) -> bool:
    """SERVICE_DEPLOYMENT_FAILED is sent only for services with the deployment circuit breaker on,
    which only the rolling update (ECS) deployment controller has."""
    properties = service.get("Properties", {})
    controller = properties.get("DeploymentController", {}).get("Type", "ECS")
    breaker = properties.get("DeploymentConfiguration", {}).get("DeploymentCircuitBreaker", {})
    return controller == "ECS" and breaker.get("Enable") in (True, "true", "True")


class EcsEventPatternCanMatch(CloudFormationLintRule):
    """E9005: an EventBridge pattern on ECS or CodeDeploy events names only what they send."""

    id = "E9005"
    shortdesc = "EventBridge patterns on ECS and CodeDeploy events can match"
    description = (
        "A rule on source aws.ecs or aws.codedeploy matches only the detail types the service sends "
        "(EventBridge events reference: 'Amazon ECS events', 'AWS CodeDeploy events'); ECS Deployment State Change "
        "events are SERVICE_DEPLOYMENT_IN_PROGRESS, _COMPLETED and _FAILED, and _FAILED is sent only "
        "for services with the deployment circuit breaker turned on (rolling update, ECS controller): "
        "a rule for it in a template whose services all deploy with CODE_DEPLOY (or without the "
        "breaker) never fires. Source: Amazon ECS Developer Guide, 'Amazon ECS service deployment "
        "state change events'."
    )
    source_url = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html"
    tags: ClassVar[list[str]] = ["resources", "events", "ecs"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        services = cfn.get_resources("AWS::ECS::Service")
        for logical, rule in cfn.get_resources("AWS::Events::Rule").items():
            pattern = rule.get("Properties", {}).get("EventPattern")
            sources = _exact(pattern.get("source", [])) if isinstance(pattern, dict) else None
            if not sources or len(sources) != 1 or sources[0] not in DETAIL_TYPES:
                continue
            (source,) = sources
            path = ["Resources", logical, "Properties", "EventPattern"]
            detail_types = _exact(pattern.get("detail-type", [])) if "detail-type" in pattern else None
            for unknown in sorted(set(detail_types or []) - DETAIL_TYPES[source]):
                matches.append(
                    RuleMatch([*path, "detail-type"], f"{source} sends no events of detail type {unknown!r}")
                )
            if source != "aws.ecs" or detail_types != ["ECS Deployment State Change"]:
                continue
            names = _exact(pattern.get("detail", {}).get("eventName", [])) or []
            for unknown in sorted(set(names) - ECS_DEPLOYMENT_EVENTS):
                matches.append(
                    RuleMatch([*path, "detail", "eventName"], f"ECS sends no deployment event named {unknown!r}")
                )
            if (
                "SERVICE_DEPLOYMENT_FAILED" in names
                and services
                and not any(_sends_deployment_failed(s) for s in services.values())
            ):
                matches.append(
                    RuleMatch(
                        [*path, "detail", "eventName"],
                        "SERVICE_DEPLOYMENT_FAILED is sent only for services with the deployment circuit "
                        "breaker (ECS controller); no service of this template has it, so the rule never fires",
                    )
                )
        return matches
