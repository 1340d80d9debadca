"""ECS services: settings that are each valid alone and broken together."""

from __future__ import annotations

from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _target(value: Any) -> str | None:
    """The logical ID a ``Ref``/``Fn::GetAtt`` points at."""
    if isinstance(value, dict) and isinstance(value.get("Ref"), str):
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return str(target.split(".", 1)[0] if isinstance(target, str) else target[0])
    return None


def _controller(service: dict[str, Any]) -> Any:
    return service.get("Properties", {}).get("DeploymentController", {}).get("Type", "ECS")


def _shifts_traffic(service: dict[str, Any]) -> bool:
    """Blue/green: the CODE_DEPLOY controller, or ECS with BLUE_GREEN, CANARY or LINEAR."""
    configuration = service.get("Properties", {}).get("DeploymentConfiguration", {})
    strategy = configuration.get("Strategy", "ROLLING") if isinstance(configuration, dict) else "ROLLING"
    return _controller(service) == "CODE_DEPLOY" or strategy in ("BLUE_GREEN", "CANARY", "LINEAR")


def _task_definition(cfn: Any, service: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The task definition a service runs, when it is in this template. A CODE_DEPLOY service may
    name it by family (the latest revision): then the task definition it DependsOn with that Family."""
    resources = cfn.template.get("Resources", {})
    value = service.get("Properties", {}).get("TaskDefinition")
    name = _target(value)
    if name is None and isinstance(value, str):
        for candidate in _listify(service.get("DependsOn", [])):
            body = resources.get(candidate, {})
            if body.get("Type") == "AWS::ECS::TaskDefinition" and body.get("Properties", {}).get("Family") == value:
                name = candidate
    body = resources.get(name, {}) if name else {}
    return (str(name), body) if body.get("Type") == "AWS::ECS::TaskDefinition" else None


class EcsExecNeedsWritableRootFilesystem(CloudFormationLintRule):
    """E9004: a service with ECS Exec runs no container with a read-only root filesystem."""

    id = "E9004"
    shortdesc = "ECS Exec needs a writable root filesystem"
    description = (
        "ECS Exec bind-mounts the SSM agent into each container, and the agent writes to the "
        "container's filesystem: with readonlyRootFilesystem true it crashes soon after launch and "
        "'aws ecs execute-command' fails. Sources: Amazon ECS Developer Guide, 'Monitor Amazon ECS "
        "containers with ECS Exec'; AWS's own amazon-ecs-exec-checker requires readonlyRootFilesystem "
        "false (aws-containers/amazon-ecs-exec-checker#21); aws/containers-roadmap#1359 (the request to "
        "support read-only root filesystems, open)."
    )
    source_url = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-exec.html"
    tags: ClassVar[list[str]] = ["resources", "ecs"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        for logical, service in cfn.get_resources("AWS::ECS::Service").items():
            if service.get("Properties", {}).get("EnableExecuteCommand") not in (True, "true", "True"):
                continue
            found = _task_definition(cfn, service)
            if found is None:
                continue
            name, task = found
            for c, container in enumerate(_listify(task.get("Properties", {}).get("ContainerDefinitions", []))):
                if isinstance(container, dict) and container.get("ReadonlyRootFilesystem") in (True, "true", "True"):
                    matches.append(
                        RuleMatch(
                            ["Resources", name, "Properties", "ContainerDefinitions", c, "ReadonlyRootFilesystem"],
                            f"service {logical} enables ECS Exec, but container {container.get('Name')!r} has a "
                            "read-only root filesystem: the ECS Exec agent cannot run in it",
                        )
                    )
        return matches


class NoRequestCountScalingWithCodeDeploy(CloudFormationLintRule):
    """E9006: a blue/green service (CODE_DEPLOY, or ECS with a traffic-shifting strategy) does not
    scale on ALBRequestCountPerTarget."""

    id = "E9006"
    shortdesc = "No ALBRequestCountPerTarget target tracking for a blue/green service"
    description = (
        "The ALBRequestCountPerTarget metric is not supported for target tracking scaling of a "
        "service that uses the blue/green deployment type (the CODE_DEPLOY controller, or the ECS "
        "controller with Strategy BLUE_GREEN, CANARY or LINEAR): its ResourceLabel names one target "
        "group while the traffic moves between two; scale on a customized metric over both. Source: "
        "Amazon ECS Developer Guide, 'Scale your Amazon ECS service using a target metric value'."
    )
    source_url = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-autoscaling-targettracking.html"
    tags: ClassVar[list[str]] = ["resources", "ecs", "applicationautoscaling"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        resources = cfn.template.get("Resources", {})
        matches = []
        for logical, policy in cfn.get_resources("AWS::ApplicationAutoScaling::ScalingPolicy").items():
            properties = policy.get("Properties", {})
            specification = properties.get("TargetTrackingScalingPolicyConfiguration", {}).get(
                "PredefinedMetricSpecification", {}
            )
            if specification.get("PredefinedMetricType") != "ALBRequestCountPerTarget":
                continue
            target = resources.get(_target(properties.get("ScalingTargetId")) or "", {})
            for service in self._services(target.get("Properties", {}).get("ResourceId")):
                body = resources.get(service, {})
                if body.get("Type") == "AWS::ECS::Service" and _shifts_traffic(body):
                    matches.append(
                        RuleMatch(
                            ["Resources", logical, "Properties", "TargetTrackingScalingPolicyConfiguration"],
                            f"ALBRequestCountPerTarget scaling of service {service}, which deploys blue/green: "
                            "AWS does not support this metric with the blue/green deployment type",
                        )
                    )
        return matches

    @staticmethod
    def _services(resource_id: Any) -> list[str]:
        """The logical IDs a scalable target's ResourceId refers to (service/<cluster>/<service>)."""
        found: list[str] = []

        def walk(value: Any) -> None:
            name = _target(value)
            if name is not None:
                found.append(name)
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

        walk(resource_id)
        return found


class CircuitBreakerOnlyWithEcsController(CloudFormationLintRule):
    """E9010: the deployment circuit breaker only on a service with the rolling (ECS) controller."""

    id = "E9010"
    shortdesc = "Deployment circuit breaker only with the ECS deployment controller"
    description = (
        "The deployment circuit breaker can only be used for services using the rolling update (ECS) "
        "deployment type; a CODE_DEPLOY or EXTERNAL service with it enabled is refused, and its "
        "releases would not be rolled back by it anyway. Source: Amazon ECS API reference, "
        "DeploymentCircuitBreaker."
    )
    source_url = "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentCircuitBreaker.html"
    tags: ClassVar[list[str]] = ["resources", "ecs"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        for logical, service in cfn.get_resources("AWS::ECS::Service").items():
            configuration = service.get("Properties", {}).get("DeploymentConfiguration", {})
            breaker = configuration.get("DeploymentCircuitBreaker", {}) if isinstance(configuration, dict) else {}
            if isinstance(breaker, dict) and breaker.get("Enable") in (True, "true", "True"):
                controller = _controller(service)
                if controller != "ECS":
                    matches.append(
                        RuleMatch(
                            ["Resources", logical, "Properties", "DeploymentConfiguration", "DeploymentCircuitBreaker"],
                            f"the deployment circuit breaker needs the ECS (rolling) controller; this service "
                            f"uses {controller}",
                        )
                    )
        return matches


SHIFTING_STRATEGIES = ("BLUE_GREEN", "CANARY", "LINEAR")


class EcsBlueGreenNeedsItsResources(CloudFormationLintRule):
    """E9011: an ECS blue/green, canary or linear service has what ECS shifts traffic with."""

    id = "E9011"
    shortdesc = "ECS blue/green, canary and linear need an alternate target group, listener rule and role"
    description = (
        "With the ECS deployment controller and a Strategy of BLUE_GREEN, CANARY or LINEAR, each load "
        "balancer of the service names in AdvancedConfiguration the alternate target group, the "
        "production listener rule (Application Load Balancer) and the IAM role ECS uses to call Elastic "
        "Load Balancing; CanaryConfiguration goes only with CANARY and LinearConfiguration only with "
        "LINEAR; the deployment circuit breaker goes with rolling updates and BLUE_GREEN only ('Both "
        "methods only support rolling update deployment and blue/green deployment types'), not with "
        "CANARY or LINEAR, which detect failures with deployment alarms. Sources: Amazon ECS Developer "
        "Guide, 'Required resources for Amazon ECS blue/green deployments' and 'Amazon ECS deployment "
        "failure detection'; ECS API reference, AdvancedConfiguration, CanaryConfiguration, "
        "LinearConfiguration."
    )
    source_url = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/blue-green-deployment-implementation.html"
    tags: ClassVar[list[str]] = ["resources", "ecs"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        for logical, service in cfn.get_resources("AWS::ECS::Service").items():
            properties = service.get("Properties", {})
            configuration = properties.get("DeploymentConfiguration", {})
            if not isinstance(configuration, dict):
                continue
            strategy = configuration.get("Strategy", "ROLLING")
            path = ["Resources", logical, "Properties", "DeploymentConfiguration"]
            for key, wanted in (("CanaryConfiguration", "CANARY"), ("LinearConfiguration", "LINEAR")):
                if key in configuration and strategy != wanted:
                    matches.append(RuleMatch([*path, key], f"{key} needs Strategy {wanted}, not {strategy}"))
            if strategy not in SHIFTING_STRATEGIES:
                continue
            if _controller(service) != "ECS":
                matches.append(
                    RuleMatch([*path, "Strategy"], f"Strategy {strategy} needs the ECS deployment controller")
                )
            breaker = configuration.get("DeploymentCircuitBreaker", {})
            enabled = isinstance(breaker, dict) and breaker.get("Enable") in (True, "true", "True")
            if enabled and strategy != "BLUE_GREEN":
                matches.append(
                    RuleMatch(
                        [*path, "DeploymentCircuitBreaker"],
                        f"the circuit breaker is for rolling updates and BLUE_GREEN; Strategy {strategy} "
                        "rolls back on deployment alarms",
                    )
                )
            for index, balancer in enumerate(_listify(properties.get("LoadBalancers", []))):
                if not isinstance(balancer, dict) or "TargetGroupArn" not in balancer:
                    continue
                advanced = balancer.get("AdvancedConfiguration", {})
                missing = [
                    key
                    for key in ("AlternateTargetGroupArn", "ProductionListenerRule", "RoleArn")
                    if not isinstance(advanced, dict) or key not in advanced
                ]
                if missing:
                    matches.append(
                        RuleMatch(
                            ["Resources", logical, "Properties", "LoadBalancers", index],
                            f"Strategy {strategy} shifts traffic between two target groups: "
                            f"AdvancedConfiguration needs {', '.join(missing)}",
                        )
                    )
        return matches
