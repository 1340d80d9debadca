"""The ``web`` kind: a public HTTP service behind the shared load balancer. Its target group(s)
and listener rule(s), request scaling, blue/green through ECS or CodeDeploy, and its alarms on the
load balancer's view of it."""

from __future__ import annotations

from typing import Any

from awacs import cloudwatch as cloudwatch_actions
from awacs import ecs as ecs_actions
from awacs import elasticloadbalancing as elb_actions
from troposphere import GetAtt, Join, Ref, Sub, Template, applicationautoscaling, cloudwatch, codedeploy, ec2, ecs
from troposphere import elasticloadbalancingv2 as elb
from troposphere.iam import Policy, Role

from infra_templates import constructs, iam
from infra_templates.config import Environment, Service
from infra_templates.layer import ExportSpec, LayerContext
from infra_templates.naming import release_name
from templates import origin_verify
from templates.contracts import (
    Monitoring,
    Network,
    Platform,
    Security,
    dns_checked_service,
    for_load_balancer,
    target_group_full_name,
)
from templates.service import alarms, containers, network, release, service_connect
from templates.service.release import pass_roles
from templates.service.scaling import metric_stat, scalable_target, target_tracking


def build(env: Environment, name: str) -> Template:
    """The stack of a ``web`` service: public HTTP behind the shared load balancer."""
    f = containers.foundation(env, name, f"the {name} service: task definition, ECS service, routing and autoscaling")
    ctx, t, service, logs, task = f.ctx, f.t, f.service, f.logs, f.task
    execution_role, task_role = f.execution_role, f.task_role

    target_group = t.add_resource(
        elb.TargetGroup(
            "TargetGroup",
            TargetType="ip",
            Protocol="HTTP",
            ProtocolVersion="HTTP1",
            Port=service.container_port,
            VpcId=ctx.import_value(Network.VPC_ID),
            HealthCheckEnabled=True,
            HealthCheckProtocol="HTTP",
            HealthCheckPath=service.health_check.path,
            HealthCheckIntervalSeconds=15,
            HealthyThresholdCount=2,
            UnhealthyThresholdCount=3,
            Matcher=elb.Matcher(HttpCode=service.health_check.healthy_codes),
            TargetGroupAttributes=[
                elb.TargetGroupAttribute(Key="deregistration_delay.timeout_seconds", Value="30"),
            ],
        )
    )
    blue_green = env.strategy_of(name) == "blue-green"
    green = t.add_resource(_green_target_group(target_group)) if blue_green else None
    rule = t.add_resource(
        _listener_rule(
            "ListenerRule",
            ctx,
            name,
            _alb(ctx, Platform.HTTPS_LISTENER_ARN),
            blue=target_group,
            green=green,
            conditions=origin_verify.condition(env),  # only what comes through CloudFront
        )
    )

    group = _security_group(t, ctx, name, service)
    capacity = env.capacity_of(name)
    ecs_service = t.add_resource(
        ecs.Service(
            "Service",
            DependsOn=[rule.title],  # the target group must belong to the ALB before tasks register
            ServiceName=name,  # named: the release pipeline, in another account, names it
            Cluster=ctx.import_value(Platform.CLUSTER_NAME),
            TaskDefinition=Ref(task),
            DesiredCount=service.desired_count,
            CapacityProviderStrategy=[
                ecs.CapacityProviderStrategyItem(
                    CapacityProvider="FARGATE", Base=capacity.fargate_base, Weight=capacity.fargate_weight
                ),
                ecs.CapacityProviderStrategyItem(CapacityProvider="FARGATE_SPOT", Weight=capacity.spot_weight),
            ],
            NetworkConfiguration=ecs.NetworkConfiguration(
                AwsvpcConfiguration=ecs.AwsvpcConfiguration(
                    AssignPublicIp="DISABLED",
                    Subnets=ctx.import_list(Network.PRIVATE_SUBNET_IDS),
                    SecurityGroups=[GetAtt(group, "GroupId")],
                )
            ),
            LoadBalancers=[
                ecs.LoadBalancer(
                    ContainerName=name, ContainerPort=service.container_port, TargetGroupArn=Ref(target_group)
                )
            ],
            HealthCheckGracePeriodSeconds=60,
            DeploymentConfiguration=ecs.DeploymentConfiguration(
                DeploymentCircuitBreaker=ecs.DeploymentCircuitBreaker(Enable=True, Rollback=True),
                MaximumPercent=200,
                MinimumHealthyPercent=100,
            ),
            DeploymentController=ecs.DeploymentController(Type="ECS"),
            EnableExecuteCommand=service.exec,
            EnableECSManagedTags=True,
            PropagateTags="SERVICE",
        )
    )
    connect = service_connect.configuration(ctx, name, service, logs)
    if connect is not None:  # a caller of backends: a Service Connect client
        ecs_service.ServiceConnectConfiguration = connect
        service_connect.export_group(t, ctx, name, service, group)
    groups = (target_group,) if green is None else (target_group, green)
    _autoscaling(t, ctx, service, ecs_service, groups)
    task_roles = [execution_role, task_role]
    if green is not None and env.codedeploy(name):
        _hand_over_to_codedeploy(ecs_service, task, ctx.stack_name)
        _blue_green(
            t,
            ctx,
            name,
            service=service,
            ecs_service=ecs_service,
            groups=(target_group, green),
            rule=rule,
            roles=task_roles,
        )
    elif green is not None:
        _ecs_blue_green(t, ctx, name, ecs_service=ecs_service, groups=(target_group, green), rule=rule)
        if service.pre_release:
            release.pre_release_hook(t, ctx, name, service.pre_release, ecs_service=ecs_service, roles=task_roles)
    release.release_role(t, ctx, name, roles=task_roles, codedeploy=env.codedeploy(name))
    _alarms(t, ctx, name, service=service, ecs_service=ecs_service, groups=groups)
    if dns_checked_service(env) == name:  # the dns stack's Route 53 check alarms on its healthy targets
        for group in groups:
            ctx.export(t, target_group_full_name(name, group.title), GetAtt(group, "TargetGroupFullName"))
    return t


def _listener_rule(
    logical_id: str,
    ctx: LayerContext,
    name: str,
    listener: ExportSpec,
    *,
    blue: elb.TargetGroup,
    green: elb.TargetGroup | None,
    conditions: list[elb.Condition] | None = None,
) -> elb.ListenerRule:
    """The service's rule on one of the ALB's listeners: its routes (and ``conditions``), its
    priority, its target groups. The blue/green test listener's rule takes no origin-verify
    header: that listener admits the VPC only (templates/security.py), never CloudFront."""
    return elb.ListenerRule(
        logical_id,
        ListenerArn=ctx.import_value(listener),
        Priority=ctx.env.listener_priorities()[name],
        Conditions=_conditions(ctx.env.services[name]) + (conditions or []),
        Actions=[_forward(blue, green)],
    )


def _alb(ctx: LayerContext, spec: ExportSpec) -> ExportSpec:
    """``spec`` (a listener, the load balancer's metric name, its security group) of the load
    balancer this service is on (``Environment.load_balancer_of``)."""
    return for_load_balancer(spec, ctx.env.load_balancer_of(ctx.layer.removeprefix("svc-")))


def _conditions(service: Service) -> list[elb.Condition]:
    conditions = []
    if service.web_routing.hosts:
        conditions.append(
            elb.Condition(Field="host-header", HostHeaderConfig=elb.HostHeaderConfig(Values=service.web_routing.hosts))
        )
    if service.web_routing.paths:
        conditions.append(
            elb.Condition(
                Field="path-pattern", PathPatternConfig=elb.PathPatternConfig(Values=service.web_routing.paths)
            )
        )
    return conditions


def _autoscaling(
    t: Template,
    ctx: LayerContext,
    service: Service,
    ecs_service: ecs.Service,
    groups: tuple[elb.TargetGroup, ...],
) -> None:
    """CPU target tracking, and request target tracking when the settings ask for it.

    One target group: the predefined ALBRequestCountPerTarget. Two (blue/green): that metric "is
    not supported for the blue/green deployment type" (ECS Developer Guide, "Scale your Amazon ECS
    service using a target metric value"), since its ResourceLabel names one target group; the
    policy tracks a customized metric instead, the requests of both target groups per running task
    (``(FILL(blue, 0) + FILL(green, 0)) / tasks``), the form AWS's own example uses (Application
    Auto Scaling User Guide, "Create a target tracking scaling policy for Application Auto Scaling
    using metric math": a count divided by the service's ECS/ContainerInsights RunningTaskCount),
    so it follows whichever colour serves."""
    scaling = service.scaling
    target = scalable_target(t, ctx, scaling, ecs_service)
    if scaling.requests_per_target is None:
        return
    if len(groups) == 1:
        # ResourceLabel: app/<alb-name>/<alb-id>/targetgroup/<tg-name>/<tg-id>
        label = Join(
            "/",
            [ctx.import_value(_alb(ctx, Platform.LOAD_BALANCER_FULL_NAME)), GetAtt(groups[0], "TargetGroupFullName")],
        )
        policy = target_tracking(
            "RequestScaling",
            "requests",
            target,
            value=scaling.requests_per_target,
            metric="ALBRequestCountPerTarget",
            label=label,
        )
    else:
        policy = target_tracking(
            "RequestScaling",
            "requests",
            target,
            value=scaling.requests_per_target,
            customized=_requests_per_task(ctx, ecs_service, groups),
        )
    t.add_resource(policy)


def _requests_per_task(
    ctx: LayerContext, ecs_service: ecs.Service, groups: tuple[elb.TargetGroup, ...]
) -> applicationautoscaling.CustomizedMetricSpecification:
    """ALB requests per minute over all of the service's target groups, per running task."""
    load_balancer = ctx.import_value(_alb(ctx, Platform.LOAD_BALANCER_FULL_NAME))
    queries = [
        metric_stat(
            f"requests{index}",
            "AWS/ApplicationELB",
            "RequestCount",
            {"LoadBalancer": load_balancer, "TargetGroup": GetAtt(group, "TargetGroupFullName")},
            "Sum",
        )
        for index, group in enumerate(groups, start=1)
    ]
    queries.append(
        metric_stat(
            "tasks",
            "ECS/ContainerInsights",
            "RunningTaskCount",
            {"ClusterName": ctx.import_value(Platform.CLUSTER_NAME), "ServiceName": GetAtt(ecs_service, "Name")},
            "Average",
        )
    )
    requests = " + ".join(f"FILL(requests{index}, 0)" for index in range(1, len(groups) + 1))
    queries.append(
        applicationautoscaling.TargetTrackingMetricDataQuery(
            Id="per_task", Expression=f"({requests}) / tasks", Label="ALB requests per task", ReturnData=True
        )
    )
    return applicationautoscaling.CustomizedMetricSpecification(Metrics=queries)


def _green_target_group(blue: elb.TargetGroup) -> elb.TargetGroup:
    """The second target group a blue/green release starts the new tasks in: the first's twin."""
    return elb.TargetGroup("GreenTargetGroup", **{k: v for k, v in blue.properties.items() if k != "Tags"})


def _forward(blue: elb.TargetGroup, green: elb.TargetGroup | None) -> elb.ListenerRuleAction:
    """Forward to the service; with blue/green, to both groups weighted 1/0, the form CodeDeploy
    itself leaves a rule in after a shift (the idle group stays attached at weight 0)."""
    if green is None:
        return elb.ListenerRuleAction(Type="forward", TargetGroupArn=Ref(blue))
    return elb.ListenerRuleAction(
        Type="forward",
        ForwardConfig=elb.ForwardConfig(
            TargetGroups=[
                elb.TargetGroupTuple(TargetGroupArn=Ref(blue), Weight=1),
                elb.TargetGroupTuple(TargetGroupArn=Ref(green), Weight=0),
            ]
        ),
    )


def _hand_over_to_codedeploy(ecs_service: ecs.Service, task: ecs.TaskDefinition, family: str) -> None:
    """CODE_DEPLOY controller. CloudFormation cannot update the TaskDefinition or LoadBalancers of
    such a service, so the service names its task definition by family (the latest ACTIVE
    revision): the property never changes, a later stack update leaves the service alone, and
    releases register new revisions of the same family through CodeDeploy."""
    ecs_service.TaskDefinition = family
    ecs_service.DependsOn = [*ecs_service.DependsOn, task.title]
    ecs_service.DeploymentController = ecs.DeploymentController(Type="CODE_DEPLOY")
    ecs_service.DeploymentConfiguration = ecs.DeploymentConfiguration(MaximumPercent=200, MinimumHealthyPercent=100)


def _ecs_blue_green(
    t: Template,
    ctx: LayerContext,
    name: str,
    *,
    ecs_service: ecs.Service,
    groups: tuple[elb.TargetGroup, elb.TargetGroup],
    rule: elb.ListenerRule,
) -> None:
    """Blue/green, canary or linear, shifted by ECS itself (deployment controller ECS).

    The stack stays the service's one owner: a new image, CPU, variable, secret, capacity mix or
    route is a stack update, and ECS rolls it out by moving the production listener rule's weights
    from the target group in use to the alternate one (the test listener rule first), keeps the old
    revision for the bake time and rolls back when a deployment alarm fires. Sources: Amazon ECS
    Developer Guide, "Amazon ECS blue/green deployments" and "Required resources for Amazon ECS
    blue/green deployments"; CloudFormation reference, AWS::ECS::Service AdvancedConfiguration and
    DeploymentConfiguration.

    The rule's forward action stays the one the template gives (weights 1/0): ECS changes the live
    weights, and CloudFormation sends the template's action again only when the rule itself
    changes (a new route or priority), which is why ``generate.py diff`` warns on such a change
    (RESETS WEIGHTS; aws/aws-cdk#36649).
    """
    env = ctx.env
    blue, green = groups
    test_rule = t.add_resource(
        _listener_rule("TestListenerRule", ctx, name, _alb(ctx, Platform.TEST_LISTENER_ARN), blue=blue, green=green)
    )
    # AdvancedConfiguration refers to both rules: that orders the service after them.
    ecs_service.DependsOn = [d for d in ecs_service.DependsOn if d != rule.title]
    if not ecs_service.DependsOn:
        del ecs_service.resource["DependsOn"]
    role = t.add_resource(_load_balancer_role(ctx, groups, [rule, test_rule]))
    ecs_service.LoadBalancers[0].AdvancedConfiguration = ecs.AdvancedConfiguration(
        AlternateTargetGroupArn=Ref(green),
        ProductionListenerRule=Ref(rule),
        TestListenerRule=Ref(test_rule),
        RoleArn=GetAtt(role, "Arn"),
    )
    alarms = [t.add_resource(_errors_alarm(ctx, groups, by="ECS"))]
    strategy, percent, minutes = env.deployment.ecs_strategy()
    configuration = ecs.DeploymentConfiguration(
        Strategy=strategy,
        # The old revision keeps running this long after production traffic moved: a rollback
        # within it is immediate (ECS API reference, DeploymentConfiguration.bakeTimeInMinutes).
        BakeTimeInMinutes=env.deployment.termination_wait_minutes,
        MaximumPercent=200,
        MinimumHealthyPercent=100,
        Alarms=ecs.DeploymentAlarms(AlarmNames=[Ref(alarm) for alarm in alarms], Enable=True, Rollback=True),
    )
    if strategy == "BLUE_GREEN":
        # Tasks of the new revision that never reach a steady state fail the deployment (and send
        # SERVICE_DEPLOYMENT_FAILED) instead of leaving it waiting: "Both methods [circuit breaker,
        # CloudWatch alarms] only support rolling update deployment and blue/green deployment
        # types" (Amazon ECS Developer Guide, "Amazon ECS deployment failure detection"). Canary and
        # linear are documented with alarms only, so they keep alarms only (rule E9011).
        configuration.DeploymentCircuitBreaker = ecs.DeploymentCircuitBreaker(Enable=True, Rollback=True)
    elif strategy == "CANARY":
        configuration.CanaryConfiguration = ecs.CanaryConfiguration(
            CanaryPercent=percent, CanaryBakeTimeInMinutes=minutes
        )
    elif strategy == "LINEAR":
        configuration.LinearConfiguration = ecs.LinearConfiguration(StepPercent=percent, StepBakeTimeInMinutes=minutes)
    ecs_service.DeploymentConfiguration = configuration


def _load_balancer_role(
    ctx: LayerContext, groups: tuple[elb.TargetGroup, elb.TargetGroup], rules: list[elb.ListenerRule]
) -> Role:
    """What ECS needs to shift this service's traffic: the least-privilege subset of the managed
    policy AmazonECSInfrastructureRolePolicyForLoadBalancers (AWS Managed Policy Reference) that
    concerns an ALB: read the load balancing setup, register targets in this service's two
    groups, modify this service's two listener rules. Trusted by ECS ("Amazon ECS infrastructure
    IAM role for load balancers", Amazon ECS Developer Guide)."""
    statements = [
        # Describe calls of Elastic Load Balancing have no resource-level permissions.
        iam.allow(
            "ReadLoadBalancing",
            [
                elb_actions.DescribeListeners,
                elb_actions.DescribeRules,
                elb_actions.DescribeTargetGroups,
                elb_actions.DescribeTargetHealth,
            ],
            ["*"],
        ),
        iam.allow(
            "RegisterInThisServicesTargetGroups",
            [elb_actions.RegisterTargets, elb_actions.DeregisterTargets],
            [Ref(group) for group in groups],
        ),
        iam.allow("ShiftThisServicesRules", [elb_actions.ModifyRule], [Ref(rule) for rule in rules]),
    ]
    return Role(
        "LoadBalancerRole",
        Description=f"ECS shifts the traffic of {ctx.stack_name}: its target groups and listener rules",
        AssumeRolePolicyDocument=iam.service_trust("ecs.amazonaws.com"),
        Policies=[Policy(PolicyName="shift-traffic", PolicyDocument=iam.document(*statements))],
    )


def _blue_green(
    t: Template,
    ctx: LayerContext,
    name: str,
    *,
    service: Service,
    ecs_service: ecs.Service,
    groups: tuple[elb.TargetGroup, elb.TargetGroup],
    rule: elb.ListenerRule,
    roles: list[Role],
) -> None:
    env = ctx.env
    blue, green = groups
    test_rule = t.add_resource(
        _listener_rule("TestListenerRule", ctx, name, _alb(ctx, Platform.TEST_LISTENER_ARN), blue=blue, green=green)
    )
    ecs_service.DependsOn = [*ecs_service.DependsOn, test_rule.title]
    alarms = [t.add_resource(_errors_alarm(ctx, groups))]
    codedeploy_role = t.add_resource(_codedeploy_role(ctx, ecs_service, [rule, test_rule], alarms, roles))
    application = t.add_resource(
        codedeploy.Application(
            "CodeDeployApplication",
            ApplicationName=release_name(env.project, env.name, name),
            ComputePlatform="ECS",
        )
    )
    t.add_resource(
        codedeploy.DeploymentGroup(
            "DeploymentGroup",
            ApplicationName=Ref(application),
            DeploymentGroupName=release_name(env.project, env.name, name),
            ServiceRoleArn=GetAtt(codedeploy_role, "Arn"),
            DeploymentConfigName=env.deployment.traffic_shift,
            DeploymentStyle=codedeploy.DeploymentStyle(
                DeploymentType="BLUE_GREEN", DeploymentOption="WITH_TRAFFIC_CONTROL"
            ),
            BlueGreenDeploymentConfiguration=codedeploy.BlueGreenDeploymentConfiguration(
                DeploymentReadyOption=codedeploy.DeploymentReadyOption(ActionOnTimeout="CONTINUE_DEPLOYMENT"),
                TerminateBlueInstancesOnDeploymentSuccess=codedeploy.BlueInstanceTerminationOption(
                    Action="TERMINATE", TerminationWaitTimeInMinutes=env.deployment.termination_wait_minutes
                ),
            ),
            ECSServices=[
                codedeploy.ECSService(
                    ClusterName=ctx.import_value(Platform.CLUSTER_NAME), ServiceName=GetAtt(ecs_service, "Name")
                )
            ],
            LoadBalancerInfo=codedeploy.LoadBalancerInfo(
                TargetGroupPairInfoList=[
                    codedeploy.TargetGroupPairInfo(
                        TargetGroups=[
                            codedeploy.TargetGroupInfo(Name=GetAtt(group, "TargetGroupName")) for group in groups
                        ],
                        ProdTrafficRoute=codedeploy.TrafficRoute(
                            ListenerArns=[ctx.import_value(_alb(ctx, Platform.HTTPS_LISTENER_ARN))]
                        ),
                        TestTrafficRoute=codedeploy.TrafficRoute(
                            ListenerArns=[ctx.import_value(_alb(ctx, Platform.TEST_LISTENER_ARN))]
                        ),
                    )
                ]
            ),
            AutoRollbackConfiguration=codedeploy.AutoRollbackConfiguration(
                Enabled=True, Events=["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"]
            ),
            AlarmConfiguration=codedeploy.AlarmConfiguration(
                Enabled=True, Alarms=[codedeploy.Alarm(Name=Ref(alarm)) for alarm in alarms]
            ),
        )
    )


def _errors_alarm(ctx: LayerContext, groups: tuple[elb.TargetGroup, ...], by: str = "CodeDeploy") -> cloudwatch.Alarm:
    """5xx answers of the service's targets, in both target groups (whichever colour serves, and
    the new one during a shift): a release that raises it is rolled back."""
    load_balancer = ctx.import_value(_alb(ctx, Platform.LOAD_BALANCER_FULL_NAME))
    topic = ctx.import_value(Monitoring.ALARM_TOPIC_ARN)
    return constructs.metric_sum_alarm(
        "ReleaseErrorsAlarm",
        topic,  # a rollback is news: the topic hears of it, like every other alarm
        description=f"{ctx.stack_name}: its targets answer 5xx; {by} rolls a release back on it",
        namespace="AWS/ApplicationELB",
        metric="HTTPCode_Target_5XX_Count",
        dimension_sets=[
            {"LoadBalancer": load_balancer, "TargetGroup": GetAtt(group, "TargetGroupFullName")} for group in groups
        ],
        statistic="Sum",
        period=60,
        evaluation_periods=1,
        datapoints=1,
        threshold=5,
        comparison="GreaterThanOrEqualToThreshold",
        missing_data="notBreaching",  # no 5xx answers, no data points: nothing is wrong
    )


def _codedeploy_role(
    ctx: LayerContext, ecs_service: ecs.Service, rules: list[elb.ListenerRule], alarms: list[Any], roles: list[Role]
) -> Role:
    """What CodeDeploy needs to release this service: its task sets, its two listener rules, its alarms."""
    task_sets = Sub(
        "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task-set/${Cluster}/${Service}/*",
        Cluster=ctx.import_value(Platform.CLUSTER_NAME),
        Service=GetAtt(ecs_service, "Name"),
    )
    statements = [
        iam.allow(
            "ManageThisServicesTaskSets",
            [
                ecs_actions.DescribeServices,
                ecs_actions.CreateTaskSet,
                ecs_actions.DeleteTaskSet,
                ecs_actions.UpdateServicePrimaryTaskSet,
            ],
            [Ref(ecs_service), task_sets],
        ),
        # Describe calls of Elastic Load Balancing have no resource-level permissions.
        iam.allow(
            "ReadLoadBalancing",
            [
                elb_actions.DescribeListeners,
                elb_actions.DescribeRules,
                elb_actions.DescribeTargetGroups,
                elb_actions.DescribeTargetHealth,
            ],
            ["*"],
        ),
        iam.allow("ShiftThisServicesRules", [elb_actions.ModifyRule], [Ref(rule) for rule in rules]),
        iam.allow(
            "ReadThisServicesAlarms",
            [cloudwatch_actions.DescribeAlarms],
            [GetAtt(alarm, "Arn") for alarm in alarms],
        ),
        pass_roles(roles),
    ]
    return Role(
        "CodeDeployRole",
        Description=f"CodeDeploy releases {ctx.stack_name}: its task sets, listener rules and alarms",
        AssumeRolePolicyDocument=iam.service_trust("codedeploy.amazonaws.com"),
        Policies=[Policy(PolicyName="release", PolicyDocument=iam.document(*statements))],
    )


def _alarms(
    t: Template,
    ctx: LayerContext,
    name: str,
    *,
    service: Service,
    ecs_service: ecs.Service,
    groups: tuple[elb.TargetGroup, ...],
) -> None:
    """The service's warnings (CPU, memory, tasks below the minimum, unhealthy targets) and one
    composite alarm for paging, on the environment's paging topic: users are affected when its
    targets answer 5xx while it is short of healthy targets, when no target is healthy, or when no
    task runs. The last two exist only where the service must run (``autoscaling.min`` > 0): a
    service scaled to zero (a pilot-light DR service) has no task and no target by design. Every
    metric alarm tells the environment's alarm topic when it fires and clears.

    No healthy target: HealthyHostCount per target group (Elastic Load Balancing, "CloudWatch
    metrics for your Application Load Balancer").

    The target-group alarms sum their metric over all of the service's target groups (both
    colours of a blue/green service), so they see the service's targets whichever colour serves."""
    limits = ctx.env.monitoring.alarms
    topic = ctx.import_value(Monitoring.ALARM_TOPIC_ARN)
    tg_dims = [
        {
            "TargetGroup": GetAtt(group, "TargetGroupFullName"),
            "LoadBalancer": ctx.import_value(_alb(ctx, Platform.LOAD_BALANCER_FULL_NAME)),
        }
        for group in groups
    ]
    common: dict[str, Any] = {
        "period": limits.period_seconds,
        "evaluation_periods": limits.evaluation_periods,
        "datapoints": limits.datapoints_to_alarm,
    }

    def add_over_groups(logical_id: str, **kwargs: Any) -> cloudwatch.Alarm:
        return t.add_resource(
            constructs.metric_sum_alarm(logical_id, topic, dimension_sets=tg_dims, **common, **kwargs)
        )

    down = alarms.task_alarms(t, ctx, name, minimum=service.scaling.min, ecs_service=ecs_service)
    must_run = service.scaling.min > 0
    add_over_groups(
        "UnhealthyTargetsAlarm", description=f"{name}: the load balancer sees unhealthy targets",
        namespace="AWS/ApplicationELB", metric="UnHealthyHostCount", statistic="Maximum",
        comparison="GreaterThanThreshold", threshold=0,
        missing_data="notBreaching",  # reported while the target group is attached; absent means no targets yet
    )  # fmt: skip
    if must_run:
        down.append(add_over_groups(
            "NoHealthyTargetAlarm", description=f"{name}: the load balancer has no healthy target for it",
            namespace="AWS/ApplicationELB", metric="HealthyHostCount", statistic="Minimum",
            comparison="LessThanThreshold", threshold=1, missing_data="breaching",
        ))  # fmt: skip
    short: list[cloudwatch.Alarm] = []
    if must_run:  # a service of minimum 0 (pilot light) is never short of targets
        short.append(add_over_groups(
            "HealthyTargetsLowAlarm",
            description=f"{name}: fewer healthy targets than the minimum of {service.scaling.min}",
            namespace="AWS/ApplicationELB", metric="HealthyHostCount", statistic="Minimum",
            comparison="LessThanThreshold", threshold=service.scaling.min,
            missing_data="breaching",  # no healthy-host data means the target group serves nobody
        ))  # fmt: skip
    errors = add_over_groups(
        "Target5xxAlarm", description=f"{name}: more than {limits.service_5xx_count} 5xx answers per period",
        namespace="AWS/ApplicationELB", metric="HTTPCode_Target_5XX_Count",
        comparison="GreaterThanThreshold", threshold=limits.service_5xx_count,
        missing_data="notBreaching",  # published only when a target answers 5xx
    )  # fmt: skip
    # a service that need not run (min 0) pages on its 5xx alone
    alarms.paging_composite(
        t,
        ctx,
        f"PAGE: users of {name} are affected: 5xx answers while short of healthy targets"
        + (", no healthy target or no running task" if must_run else ""),
        all_of=[errors, *short],
        any_of=down,
    )


def _security_group(t: Template, ctx: LayerContext, name: str, service: Service) -> ec2.SecurityGroup:
    """The service's group: its container port from the ALB only; out, HTTPS and (if it may) the
    database port. The rules on the ALB's and the database's groups that complete each path are
    here too, so the security stack does not grow with the services."""
    group = network.security_group(t, ctx, f"{ctx.stack_name}: port {service.container_port} from the ALB only")
    own = GetAtt(group, "GroupId")
    constructs.allow_between(
        t,
        ctx.import_value(_alb(ctx, Security.ALB_SECURITY_GROUP)),
        own,
        service.container_port,
        egress=("AlbToServiceEgress", f"ALB forwards to the {name} service's container port"),
        ingress=("ServiceFromAlbIngress", f"{name} container port, from the ALB only"),
    )
    network.outbound(t, ctx, name, service, own)
    return group
