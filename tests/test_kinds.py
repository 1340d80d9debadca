"""Service kinds (issue #18): web, backend (Service Connect), worker (its queue), job (a schedule),
sidecars, and the refusals of what a kind cannot do."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import ENVIRONMENTS, edit_yaml, generate_main, refusal, resources

from infra_templates.config import load_environment
from templates.service import build

QUEUE_ARN = "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:shop-%s-svc-mailer"


def props(body: dict, logical: str) -> dict:
    return body["Resources"][logical]["Properties"]


def statements(body: dict, role: str) -> dict[str, dict]:
    policies = props(body, role).get("Policies", [])
    return {s["Sid"]: s for p in policies for s in p["PolicyDocument"]["Statement"]}


def set_service(folder: Path, name: str, **settings: object) -> None:
    """Replace services.<name> in defaults.yaml (and drop it from every environment file)."""
    for path in folder.glob("*.yaml"):
        data = yaml.safe_load(path.read_text()) or {}
        if path.name != "defaults.yaml":
            data.get("services", {}).pop(name, None)
        else:
            data["services"][name] = settings
        path.write_text(yaml.safe_dump(data, sort_keys=False))


# --- refusals: file and field, for what cannot work --------------------------------------------------

WORKER = {"kind": "worker", "cpu": 256, "memory": 512, "desired_count": 1, "autoscaling": {"min": 1, "max": 1}}
JOB = {"kind": "job", "cpu": 256, "memory": 512, "schedule": {"expression": "rate(1 day)"}}
BACKEND = {"kind": "backend", "port": 9000, "cpu": 256, "memory": 512, "desired_count": 1}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({**WORKER, "routing": {"paths": ["/q/*"]}}, ("services.extra.routing", "is not for a worker service")),
        ({**WORKER, "port": 8080}, ("services.extra.port", "is not for a worker service")),
        ({**JOB, "autoscaling": {"min": 1, "max": 2}}, ("services.extra.autoscaling", "is not for a job service")),
        ({**JOB, "calls": ["payments"]}, ("services.extra.calls", "is not for a job service")),
        ({**JOB, "schedule": None}, ("services.extra.schedule", "is required for a job service")),
        (
            {**BACKEND, "autoscaling": {"min": 1, "max": 2}, "routing": {"paths": ["/b/*"]}},
            ("services.extra.routing", "is not for a"),
        ),
        ({**BACKEND}, ("services.extra.autoscaling", "is required for a backend service")),
        (
            {**BACKEND, "autoscaling": {"min": 1, "max": 2, "requests_per_target": 100}},
            ("services.extra.autoscaling.requests_per_target", "is for a web service"),
        ),
        ({**WORKER, "schedule": {"expression": "rate(1 day)"}}, ("services.extra.schedule", "is not for a worker")),
        ({**JOB, "schedule": {"expression": "every night"}}, ("services.extra.schedule.expression", "is not a cron")),
        ({**JOB, "schedule": {"expression": "cron(0 3 * * * *)"}}, "needs '?' in day-of-month or day-of-week"),
        (
            {**JOB, "schedule": {"expression": "rate(1 day)", "timezone": "Mars/Olympus"}},
            ("services.extra.schedule.timezone", "is not an IANA time zone"),
        ),
        (
            {**WORKER, "sidecars": [{"name": "proxy", "image": "public.ecr.aws/x/y:1", "memory": 512}]},
            ("services.extra.sidecars", "take 512 MiB of the task's 512"),
        ),
        (
            {**WORKER, "sidecars": [{"name": "extra", "image": "public.ecr.aws/x/y", "memory": 64}]},
            ("services.extra.sidecars[0].image", "should match pattern"),
        ),
    ],
)
def test_a_kind_refuses_what_it_cannot_do(settings_dir, settings, expected) -> None:
    set_service(settings_dir, "extra", **settings)
    message = refusal(settings_dir)
    assert f"(inherited from {settings_dir / 'defaults.yaml'})" in message
    where, what = expected if isinstance(expected, tuple) else (None, expected)
    assert what in message
    if where is not None:
        assert f"staging.yaml: {where}" in message


@pytest.mark.parametrize(
    ("field", "names", "expected"),
    [
        ("calls", ["nowhere"], "services.api.calls[0] = 'nowhere': is not a service"),
        ("calls", ["mailer"], "services.api.calls[0] = 'mailer': is a worker service; calls names backend services"),
        ("calls", ["api"], "services.api.calls[0] = 'api': names itself"),
        ("sends_to", ["payments"], "sends_to[0] = 'payments': is a backend service; sends_to names worker services"),
    ],
)
def test_calls_and_sends_to_name_services_of_the_right_kind(settings_dir, field, names, expected) -> None:
    edit_yaml(settings_dir / "defaults.yaml", **{f"services__api__{field}": names})
    setting, why = expected.split(": ", 1)
    assert f"{setting} (inherited from {settings_dir / 'defaults.yaml'}): {why}" in refusal(settings_dir)


def test_a_worker_scaling_on_its_backlog_needs_container_insights(settings_dir) -> None:
    # dev has Container Insights off and keeps its worker at one task; asking it to scale is refused.
    edit_yaml(settings_dir / "dev.yaml", services__mailer__autoscaling={"min": 1, "max": 3})
    message = refusal(settings_dir, "dev")
    assert "dev.yaml: services.mailer.autoscaling.max = 3: above min makes the worker scale on its backlog" in message


def test_the_refusal_exits_2_naming_file_and_field(settings_dir) -> None:
    set_service(settings_dir, "extra", **{**WORKER, "routing": {"paths": ["/q/*"]}})
    status, _, err = generate_main("--settings", str(settings_dir), "--env", "staging", "--output", "/nonexistent")
    assert status == 2
    # Refused the same way in every environment: said once, of defaults.yaml, where the fix is.
    assert "defaults.yaml: services.extra.routing: is not for a worker service" in err
    assert err.count("services.extra.routing") == 1 and "(every environment: dev, dr, prod, staging)" in err
    assert "Traceback" not in err


# --- backend: Service Connect, open to its callers only -----------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_backend_is_reached_through_service_connect_by_its_callers_only(stacks, env) -> None:
    body = stacks[env]["svc-payments"].body
    service = props(body, "Service")
    assert "LoadBalancers" not in service
    connect = service["ServiceConnectConfiguration"]
    assert connect["Enabled"] is True
    assert connect["Namespace"] == {"Fn::ImportValue": f"shop-{env}-platform-ServiceConnectNamespaceArn"}
    (served,) = connect["Services"]
    assert served == {
        "PortName": "http",
        "DiscoveryName": "payments",
        "ClientAliases": [{"DnsName": "payments", "Port": 9000}],
    }
    (mapping,) = props(body, "TaskDefinition")["ContainerDefinitions"][0]["PortMappings"]
    assert mapping == {"ContainerPort": 9000, "Protocol": "tcp", "Name": "http", "AppProtocol": "http"}
    groups = service["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
    assert groups == [{"Fn::GetAtt": ["ServiceSecurityGroup", "GroupId"]}]
    assert (
        body["Outputs"]["ServiceSecurityGroupId"]["Export"]["Name"] == f"shop-{env}-svc-payments-ServiceSecurityGroupId"
    )
    # Nothing in its own stack lets anything in: the only way in is the connect stack's rule below.
    assert not resources(body, "AWS::EC2::SecurityGroupIngress")
    connect = stacks[env]["connect"].body
    (ingress,) = resources(connect, "AWS::EC2::SecurityGroupIngress").values()
    assert ingress["Properties"]["GroupId"] == {"Fn::ImportValue": f"shop-{env}-svc-payments-ServiceSecurityGroupId"}
    assert ingress["Properties"]["SourceSecurityGroupId"] == {
        "Fn::ImportValue": f"shop-{env}-svc-api-ServiceSecurityGroupId"
    }
    assert (ingress["Properties"]["FromPort"], ingress["Properties"]["ToPort"]) == (9000, 9000)
    (egress,) = resources(connect, "AWS::EC2::SecurityGroupEgress").values()
    assert egress["Properties"]["GroupId"] == ingress["Properties"]["SourceSecurityGroupId"]
    platform = stacks[env]["platform"].body
    namespace = resources(platform, "AWS::ServiceDiscovery::HttpNamespace")
    assert list(namespace) == ["ServiceConnectNamespace"]
    assert props(platform, "Cluster")["ServiceConnectDefaults"] == {
        "Namespace": {"Fn::GetAtt": ["ServiceConnectNamespace", "Arn"]}
    }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_caller_joins_the_namespace_as_a_client_in_its_group(stacks, env) -> None:
    service = props(stacks[env]["svc-api"].body, "Service")
    connect = service["ServiceConnectConfiguration"]
    assert connect["Enabled"] is True and "Services" not in connect
    assert "ServiceSecurityGroupId" in stacks[env]["svc-api"].body["Outputs"]
    # web calls nothing: no Service Connect, no group of it
    web = stacks[env]["svc-web"].body
    assert "ServiceConnectConfiguration" not in props(web, "Service")
    assert "ServiceSecurityGroupId" not in web.get("Outputs", {})


# --- worker: its queue, backlog scaling, alarms -------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_worker_consumes_its_encrypted_queue_behind_a_dead_letter_queue(stacks, env) -> None:
    body = stacks[env]["svc-mailer"].body
    queue = props(body, "Queue")
    assert queue["QueueName"] == f"shop-{env}-svc-mailer"
    assert queue["KmsMasterKeyId"] == {"Fn::ImportValue": f"shop-{env}-keys-DataKeyArn"}
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    assert queue["VisibilityTimeout"] == 120
    dlq = props(body, "DeadLetterQueue")
    assert dlq["KmsMasterKeyId"] == queue["KmsMasterKeyId"]
    assert dlq["RedriveAllowPolicy"]["sourceQueueArns"] == [{"Fn::Sub": QUEUE_ARN % env}]
    service = props(body, "Service")
    assert "LoadBalancers" not in service
    (container,) = props(body, "TaskDefinition")["ContainerDefinitions"]
    assert "PortMappings" not in container
    assert {
        "Name": "QUEUE_URL",
        "Value": {
            "Fn::Sub": f"https://sqs.${{AWS::Region}}.${{AWS::URLSuffix}}/${{AWS::AccountId}}/shop-{env}-svc-mailer"
        },
    } in container["Environment"]
    consume = statements(body, "TaskRole")["ConsumeThisServicesQueue"]
    assert consume["Resource"] == [{"Fn::Sub": QUEUE_ARN % env}]
    assert "sqs:SendMessage" not in consume["Action"]
    assert not resources(body, "AWS::EC2::SecurityGroupIngress")


def test_the_worker_scales_on_its_backlog_per_task_where_it_may_scale(stacks) -> None:
    policy = props(stacks["prod"]["svc-mailer"].body, "BacklogScaling")
    configuration = policy["TargetTrackingScalingPolicyConfiguration"]
    assert configuration["TargetValue"] == 50.0
    metrics = {m["Id"]: m for m in configuration["CustomizedMetricSpecification"]["Metrics"]}
    assert metrics["e1"]["Expression"] == "m1 / m2" and metrics["e1"]["ReturnData"] is True
    assert metrics["m1"]["MetricStat"]["Metric"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert metrics["m1"]["MetricStat"]["Stat"] == "Sum"
    assert metrics["m2"]["MetricStat"]["Metric"]["Namespace"] == "ECS/ContainerInsights"
    assert metrics["m2"]["MetricStat"]["Metric"]["MetricName"] == "RunningTaskCount"
    # dev: Container Insights off, one task: no backlog policy, CPU alone
    dev = stacks["dev"]["svc-mailer"].body
    assert "BacklogScaling" not in dev["Resources"] and "CpuScaling" in dev["Resources"]


def test_the_worker_alarms_on_its_queue_age_and_its_dead_letters(stacks) -> None:
    body = stacks["prod"]["svc-mailer"].body
    age = props(body, "OldestMessageAlarm")
    assert (age["MetricName"], age["Threshold"]) == ("ApproximateAgeOfOldestMessage", 600.0)
    dead = props(body, "DeadLettersAlarm")
    assert dead["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}]
    assert dead["ComparisonOperator"] == "GreaterThanThreshold" and dead["Threshold"] == 0.0
    assert "OldestMessageAlarm" in props(body, "UsersAffectedAlarm")["AlarmRule"]["Fn::Sub"][0]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_sender_may_send_to_the_workers_queue_only(stacks, env) -> None:
    body = stacks[env]["svc-api"].body
    send = statements(body, "TaskRole")["SendToTheWorkersQueues"]
    assert sorted(send["Action"]) == ["sqs:GetQueueUrl", "sqs:SendMessage"]
    assert send["Resource"] == [{"Fn::Sub": QUEUE_ARN % env}]
    key = statements(body, "TaskRole")["UseTheDataKeyThroughSqs"]
    assert key["Condition"] == {"StringEquals": {"kms:ViaService": {"Fn::Sub": "sqs.${AWS::Region}.amazonaws.com"}}}
    (container,) = props(body, "TaskDefinition")["ContainerDefinitions"]
    assert "QUEUE_URL_MAILER" in {v["Name"] for v in container["Environment"]}
    assert "SendToTheWorkersQueues" not in statements(stacks[env]["svc-web"].body, "TaskRole")


# --- job: a schedule, its own roles, failed runs --------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_job_runs_on_its_schedule_with_no_service_between_runs(stacks, env) -> None:
    body = stacks[env]["svc-nightly"].body
    assert not resources(body, "AWS::ECS::Service")
    assert not resources(body, "AWS::ApplicationAutoScaling::ScalableTarget")
    schedule = props(body, "Schedule")
    assert (schedule["ScheduleExpression"], schedule["ScheduleExpressionTimezone"]) == (
        "cron(0 3 * * ? *)",
        "Europe/Paris",
    )
    assert schedule["State"] == ("DISABLED" if env == "dr" else "ENABLED")  # dr: pilot light
    target = schedule["Target"]
    assert target["Arn"] == {"Fn::ImportValue": f"shop-{env}-platform-ClusterArn"}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}
    ecs = target["EcsParameters"]
    assert ecs["TaskDefinitionArn"] == {"Ref": "TaskDefinition"} and ecs["TaskCount"] == 1
    assert ecs["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    granted = statements(body, "SchedulerRole")
    run = granted["RunThisJobsTask"]
    family = f"task-definition/shop-{env}-svc-nightly:*"
    assert run["Resource"] == [{"Fn::Sub": "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:" + family}]
    assert run["Condition"] == {"ArnEquals": {"ecs:cluster": {"Fn::ImportValue": f"shop-{env}-platform-ClusterArn"}}}
    assert granted["PassThisServicesTaskRoles"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    assert granted["SendUndeliveredRunsToTheDeadLetterQueue"]["Resource"] == [
        {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    ]
    trust = props(body, "SchedulerRole")["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}


def test_a_jobs_failed_runs_are_alarms(stacks) -> None:
    body = stacks["prod"]["svc-nightly"].body
    alarm = props(body, "FailedRunsAlarm")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}]
    rule = props(body, "FailedRunRule")
    detail = rule["EventPattern"]["detail"]
    assert detail["group"] == ["job:nightly"] and detail["lastStatus"] == ["STOPPED"]
    assert {"containers": {"name": ["nightly"], "exitCode": [{"anything-but": 0}]}} in detail["$or"]
    assert rule["Targets"] == [{"Id": "AlarmTopic", "Arn": {"Fn::ImportValue": "shop-prod-monitoring-AlarmTopicArn"}}]
    dashboard = props(stacks["prod"]["dashboard"].body, "Dashboard")["DashboardBody"]["Fn::Sub"][0]
    assert "FailedRunRule" in dashboard and "shop-prod-svc-mailer" in dashboard


# --- sidecars -------------------------------------------------------------------------------------


def test_sidecars_run_beside_the_one_essential_application_container(settings_dir) -> None:
    sidecar = {
        "name": "collector",
        "image": "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.1",
        "memory": 128,
        "cpu": 64,
        "secrets": {"API_KEY": "ssm:/shop/collector/key"},
    }
    edit_yaml(settings_dir / "defaults.yaml", services__mailer__sidecars=[sidecar])
    env = load_environment("staging", settings_dir)
    body = build(env, "mailer").to_dict()
    app, side = props(body, "TaskDefinition")["ContainerDefinitions"]
    assert [c["Essential"] for c in (app, side)] == [True, False]
    assert app["Memory"] + side["Memory"] == 512
    assert side["DependsOn"] == [{"ContainerName": "mailer", "Condition": "START"}]
    assert side["ReadonlyRootFilesystem"] is True
    read = statements(body, "ExecutionRole")["ReadThisServicesParameters"]
    assert read["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/shop/collector/key"}
    ]


def test_every_kind_builds_in_every_shipped_environment(environments) -> None:
    kinds = {s.kind for env in environments.values() for s in env.services.values()}
    assert kinds == {"web", "backend", "worker", "job"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_deployer_may_create_what_the_kinds_add(stacks, env) -> None:
    # CloudFormation's role derives its actions from the resource types of the output (deployer.py):
    # the queues, the schedule and the Service Connect namespace are among them.
    text = stacks[env]["deployer"].json
    for action in ("sqs:CreateQueue", "scheduler:CreateSchedule", "servicediscovery:CreateHttpNamespace"):
        assert f'"{action}"' in text, action
