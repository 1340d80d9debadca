"""Monitoring: every alarm reaches the alarm topic, every service and the database are watched, the
mailer may send only from its identity, each notification path can be switched off, and every log
group has a retention and a key."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from conftest import ENVIRONMENTS, all_stacks, edit_yaml, resources

from infra_templates.config import Environment, SettingsError, load_environment
from infra_templates.layer import apply_tags
from infra_templates.render import template_dict
from templates import dns, monitoring
from templates.contracts import Monitoring, dns_checked_service

ALARM_TYPES = ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")
MAILER_TYPES = (
    "AWS::SES::EmailIdentity",
    "AWS::Lambda::Function",
    "AWS::Lambda::Permission",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::SQS::Queue",
    "AWS::IAM::Role",
    "AWS::Logs::LogGroup",
)


def alarms(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in body["Resources"].items() if v["Type"] in ALARM_TYPES}


def test_every_alarm_in_every_template_notifies_the_topic_when_it_fires_and_clears(environments) -> None:
    counted = 0
    for env, layer, stack in all_stacks():
        if env == "project":
            assert not alarms(stack.body)
            continue
        topic_export = {"Fn::ImportValue": Monitoring.ALARM_TOPIC_ARN.name(environments[env])}
        # The monitoring stack's topic, or in us-east-1 the edge alarms' own (alarms notify only
        # topics of their region); the service stacks import the monitoring stack's.
        topic = {"Ref": "AlarmTopic"} if layer in {"monitoring", "edge-alarms"} else topic_export
        # The paging composite alarms page on the paging topic instead (tests/test_paging.py).
        paging_export = {"Fn::ImportValue": Monitoring.PAGING_TOPIC_ARN.name(environments[env])}
        paging = {"Ref": "PagingTopic"} if layer == "monitoring" else paging_export
        read_by_route53 = _read_by_route53(environments[env], layer)
        for name, alarm in alarms(stack.body).items():
            props = alarm["Properties"]
            if name in read_by_route53:
                # a Route 53 health check's alarm (templates/dns.py): the idle colour's is in ALARM
                # between releases, so it notifies no one; NoHealthyTargetAlarm does
                assert "AlarmActions" not in props and "OKActions" not in props, f"{env}/{layer} {name}"
                continue
            if name in {"PagingAlarm", "UsersAffectedAlarm"}:
                assert props["AlarmActions"] == props["OKActions"] == [paging], f"{env}/{layer} {name}"
                counted += 1
                continue
            assert props["AlarmActions"] == [topic], f"{env}/{layer} {name}"
            assert props["OKActions"] == [topic], f"{env}/{layer} {name}"
            if alarm["Type"] == "AWS::CloudWatch::Alarm":
                assert props["TreatMissingData"] in {"breaching", "notBreaching"}, f"{env}/{layer} {name}"
            counted += 1
    assert counted > 20 * len(ENVIRONMENTS)


GREEN_AND_BLUE = (
    {"Fn::GetAtt": ["TargetGroup", "TargetGroupFullName"]},
    {"Fn::GetAtt": ["GreenTargetGroup", "TargetGroupFullName"]},
)


def _read_by_route53(env: Environment, layer: str) -> set[str]:
    """The alarms of ``layer`` a Route 53 health check of DNS failover monitors: one per target group
    of the service whose health the check follows, in the dns stack (templates/dns.py)."""
    service = dns_checked_service(env)
    if service is None or layer != "dns":
        return set()
    return {f"{group}HealthAlarm" for group in dns.target_groups(env, service)}


def groups_seen(alarm: dict[str, Any]) -> list[Any]:
    """The target groups an alarm's metric (or the metrics its expression sums) names, in order;
    with metric math, checks the expression sums every metric it queries."""
    if "Metrics" not in alarm:
        return [{d["Name"]: d["Value"] for d in alarm["Dimensions"]}["TargetGroup"]]
    stats = [q for q in alarm["Metrics"] if "MetricStat" in q]
    (total,) = [q for q in alarm["Metrics"] if q.get("ReturnData")]
    assert total["Expression"] == " + ".join(f"FILL({q['Id']}, 0)" for q in stats)
    return [{d["Name"]: d["Value"] for d in q["MetricStat"]["Metric"]["Dimensions"]}["TargetGroup"] for q in stats]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_service_has_warnings_and_a_paging_alarm(stacks, environments, env) -> None:
    for service, settings in environments[env].services.items():
        if settings.kind != "web":  # the other kinds' alarms: test_kinds.py
            continue
        body = stacks[env][f"svc-{service}"].body
        found = alarms(body)
        expected = {"CpuAlarm", "MemoryAlarm", "UnhealthyTargetsAlarm", "Target5xxAlarm"}
        must_run = settings.autoscaling.min > 0
        if must_run:
            expected |= {"HealthyTargetsLowAlarm", "NoHealthyTargetAlarm", "NoRunningTaskAlarm"}
        if must_run and environments[env].platform.container_insights != "disabled":
            expected.add("RunningTasksAlarm")
        blue_green = environments[env].strategy_of(service) == "blue-green"
        if blue_green:  # ECS (or CodeDeploy) rolls a release back on it
            expected.add("ReleaseErrorsAlarm")
        assert expected | {"UsersAffectedAlarm"} == set(found)
        tasks = found.get("RunningTasksAlarm", {}).get("Properties", {})
        if tasks:
            assert (tasks["Namespace"], tasks["MetricName"]) == ("ECS/ContainerInsights", "RunningTaskCount")
            assert tasks["Threshold"] == settings.autoscaling.min
            assert tasks["TreatMissingData"] == "breaching"  # no data: no task runs
        for name in (
            "UnhealthyTargetsAlarm", "HealthyTargetsLowAlarm", "NoHealthyTargetAlarm", "Target5xxAlarm",
            "ReleaseErrorsAlarm",
        ):  # fmt: skip
            if name in found:
                assert groups_seen(found[name]["Properties"]) == (
                    [GREEN_AND_BLUE[0], GREEN_AND_BLUE[1]] if blue_green else [GREEN_AND_BLUE[0]]
                ), f"{env}/{service} {name}: tied to one colour"
        rule = found["UsersAffectedAlarm"]["Properties"]["AlarmRule"]["Fn::Sub"]
        if must_run:
            assert rule[0] == (
                '(ALARM("${Target5xxAlarm}") AND ALARM("${HealthyTargetsLowAlarm}"))'
                ' OR ALARM("${NoRunningTaskAlarm}") OR ALARM("${NoHealthyTargetAlarm}")'
            )
        else:
            assert rule[0] == '(ALARM("${Target5xxAlarm}"))'
        assert rule[1] == {name: {"Fn::GetAtt": [name, "Arn"]} for name in re.findall(r"\$\{(\w+)\}", rule[0])}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_database_the_alb_and_every_nat_gateway_have_alarms(stacks, environments, env) -> None:
    settings = environments[env]
    found = alarms(stacks[env]["monitoring"].body)
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for alarm in found.values():
        if "MetricName" in alarm["Properties"]:  # not the paging composite alarm
            by_metric.setdefault(alarm["Properties"]["MetricName"], []).append(alarm["Properties"])
    for metric in ("CPUUtilization", "FreeableMemory", "DatabaseConnections"):
        (props,) = by_metric[metric]
        assert props["Dimensions"][0]["Name"] == "DBClusterIdentifier"
    serverless = settings.database.capacity.mode == "serverless"
    assert ("ACUUtilization" in by_metric) == serverless
    assert ("AuroraReplicaLagMaximum" in by_metric) == (settings.database.capacity.readers > 0)
    for metric in ("HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count", "RejectedConnectionCount"):
        assert len(by_metric[metric]) == 1
    assert sorted(p["ExtendedStatistic"] for p in by_metric["TargetResponseTime"]) == ["p95", "p99"]
    nats = len(resources(stacks[env]["network"].body, "AWS::EC2::NatGateway"))
    assert nats == (1 if settings.network.nat_gateways == "single" else settings.network.availability_zones)
    assert len(by_metric["ErrorPortAllocation"]) == len(by_metric["PacketsDropCount"]) == nats
    selected = sorted(p["Dimensions"][0]["Value"]["Fn::Select"][0] for p in by_metric["ErrorPortAllocation"])
    assert selected == list(range(nats))


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_topic_is_encrypted_and_only_cloudwatch_and_eventbridge_of_this_account_publish(stacks, env) -> None:
    body = stacks[env]["monitoring"].body
    topic = body["Resources"]["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": ["AlarmTopicKey", "Arn"]}
    key_statements = body["Resources"]["AlarmTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
    users = {s["Principal"].get("Service"): s["Action"] for s in key_statements if "Service" in s["Principal"]}
    assert users == {
        "cloudwatch.amazonaws.com": ["kms:GenerateDataKey", "kms:Decrypt"],
        "events.amazonaws.com": ["kms:GenerateDataKey", "kms:Decrypt"],
    }
    policy = resources(body, "AWS::SNS::TopicPolicy")["AlarmTopicPolicy"]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert {s["Principal"]["Service"] for s in statements} == {"cloudwatch.amazonaws.com", "events.amazonaws.com"}
    for statement in statements:
        assert statement["Action"] == ["sns:Publish"]
        assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_ecs_failures_of_this_cluster_reach_the_topic(stacks, environments, env) -> None:
    body = stacks[env]["monitoring"].body
    rules = resources(body, "AWS::Events::Rule")
    settings = environments[env]
    by_ecs = [s for s in settings.services if not settings.codedeploy(s)]
    # ECS sends SERVICE_DEPLOYMENT_FAILED for services of its own controller (rolling with the
    # circuit breaker, blue/green with deployment alarms); a CODE_DEPLOY release fails as a
    # CodeDeploy deployment. Each rule exists only where it can fire (E9005).
    assert ("DeploymentFailedRule" in rules) == bool(by_ecs)
    assert ("ReleaseFailedRule" in rules) == bool(settings.codedeploy_services)
    if by_ecs:
        failed = rules["DeploymentFailedRule"]["Properties"]
        assert failed["EventPattern"]["detail"] == {"eventName": ["SERVICE_DEPLOYMENT_FAILED"]}
        assert failed["EventPattern"]["detail-type"] == ["ECS Deployment State Change"]
    if settings.codedeploy_services:
        released = rules["ReleaseFailedRule"]["Properties"]["EventPattern"]
        assert released["source"] == ["aws.codedeploy"]
        assert released["detail-type"] == ["CodeDeploy Deployment State-change Notification"]
        assert released["detail"]["state"] == ["FAILURE"]
        assert released["detail"]["application"] == [f"shop-{env}-{s}" for s in settings.codedeploy_services]
    errors = rules["ServiceErrorRule"]["Properties"]["EventPattern"]
    assert errors["detail"]["eventType"] == ["ERROR"]
    assert errors["detail"]["clusterArn"] == [{"Fn::ImportValue": f"shop-{env}-platform-ClusterArn"}]
    mailer = environments[env].monitoring.ses_email.enabled
    for name in set(rules) & {"DeploymentFailedRule", "ReleaseFailedRule", "ServiceErrorRule"}:
        targets = {t["Id"]: t["Arn"] for t in rules[name]["Properties"]["Targets"]}
        assert targets["AlarmTopic"] == {"Ref": "AlarmTopic"}
        assert ("Mailer" in targets) == mailer


def mailer_envs(environments) -> list[str]:
    return [name for name, env in environments.items() if env.monitoring.ses_email.enabled]


def test_some_environment_runs_each_path(environments) -> None:
    assert mailer_envs(environments)
    assert any(env.monitoring.sns_email.enabled for env in environments.values())


@pytest.mark.parametrize("env", ["prod", "dr"])
def test_the_mailer_may_send_only_from_the_configured_identity(stacks, environments, env) -> None:
    settings = environments[env].monitoring.ses_email
    assert settings.enabled
    body = stacks[env]["monitoring"].body
    identity = body["Resources"]["MailerIdentity"]["Properties"]
    assert identity["EmailIdentity"] == settings.sender
    role = body["Resources"]["MailerRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    ses_statements = [s for s in statements if any(a.startswith("ses:") for a in s["Action"])]
    assert len(ses_statements) == 1
    (send,) = ses_statements
    assert send["Action"] == ["ses:SendEmail", "ses:SendRawEmail"]
    assert send["Resource"] == [
        {
            "Fn::Sub": [
                "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${Identity}",
                {"Identity": {"Ref": "MailerIdentity"}},
            ]
        }
    ]
    assert send["Condition"] == {"StringEquals": {"ses:FromAddress": settings.sender}}
    # Nothing else: its own logs, its own dead-letter queue and that queue's key, through SQS only.
    others = {s["Sid"]: s["Resource"] for s in statements if s is not send}
    assert others == {
        "WriteItsOwnLogs": [{"Fn::GetAtt": ["MailerLogGroup", "Arn"]}],
        "KeepFailedEvents": [{"Fn::GetAtt": ["MailerDeadLetterQueue", "Arn"]}],
        "EncryptFailedEventsThroughSqs": [{"Fn::GetAtt": ["AlarmTopicKey", "Arn"]}],
    }
    function = body["Resources"]["Mailer"]["Properties"]
    assert function["LoggingConfig"] == {"LogGroup": {"Ref": "MailerLogGroup"}}
    assert function["Runtime"] in {"python3.12", "python3.13"}
    assert "ReservedConcurrentExecutions" not in function  # constructs.NO_RESERVED_CONCURRENCY
    assert "Environment" not in function  # settings live in the code: nothing to encrypt
    assert function["DeadLetterConfig"] == {"TargetArn": {"Fn::GetAtt": ["MailerDeadLetterQueue", "Arn"]}}
    pattern = body["Resources"]["AlarmStateChangeRule"]["Properties"]["EventPattern"]
    assert pattern["detail"]["alarmName"] == [{"prefix": f"shop-{env}-"}]


def built_monitoring(settings_dir: Path, env: str, **changes: Any) -> dict[str, Any]:
    edit_yaml(settings_dir / f"{env}.yaml", **changes)
    settings = load_environment(env, settings_dir)
    template = monitoring.build(settings)
    apply_tags(template, {})
    return template_dict(template)


def test_switching_the_ses_path_off_removes_the_mailer(settings_dir: Path) -> None:
    on = built_monitoring(settings_dir, "prod")
    off = built_monitoring(settings_dir, "prod", monitoring__ses_email={"enabled": False})
    for type_ in MAILER_TYPES:
        assert resources(on, type_), type_
        assert not resources(off, type_), type_
    assert "AlarmStateChangeRule" not in off["Resources"]
    assert {"MailerErrorsAlarm", "MailerDeadLettersAlarm"} <= set(on["Resources"]) - set(off["Resources"])
    for name, rule in resources(off, "AWS::Events::Rule").items():
        pages = [] if name == "ServiceErrorRule" else ["PagingTopic"]  # failed releases page too
        assert [t["Id"] for t in rule["Properties"]["Targets"]] == ["AlarmTopic", *pages]
    assert resources(off, "AWS::SNS::Topic")  # the alarms still have their topic


def test_switching_the_sns_email_path_off_removes_the_subscriptions(settings_dir: Path) -> None:
    on = built_monitoring(
        settings_dir, "staging", monitoring__sns_email={"enabled": True, "recipients": ["a@x.io", "b@x.io"]}
    )
    subscriptions = resources(on, "AWS::SNS::Subscription")
    for topic in ("AlarmTopic", "PagingTopic"):  # both reach the recipients until a pager is attached
        endpoints = [
            s["Properties"]["Endpoint"] for s in subscriptions.values() if s["Properties"]["TopicArn"] == {"Ref": topic}
        ]
        assert sorted(endpoints) == ["a@x.io", "b@x.io"], topic
    assert all(s["Properties"]["Protocol"] == "email" for s in subscriptions.values())
    off = built_monitoring(settings_dir, "staging", monitoring__sns_email={"enabled": False})
    assert not resources(off, "AWS::SNS::Subscription")
    assert resources(off, "AWS::SNS::Topic")


def refusal(settings_dir: Path, env: str = "staging", **changes: Any) -> str:
    edit_yaml(settings_dir / f"{env}.yaml", **changes)
    with pytest.raises(SettingsError) as caught:
        load_environment(env, settings_dir)
    return str(caught.value)


def test_ses_path_without_a_sender_is_refused(settings_dir: Path) -> None:
    message = refusal(settings_dir, monitoring__ses_email={"enabled": True, "recipients": ["ops@example.com"]})
    assert "staging.yaml: monitoring.ses_email.sender: is required while enabled is true" in message


def test_ses_path_without_recipients_is_refused(settings_dir: Path) -> None:
    message = refusal(settings_dir, monitoring__ses_email={"enabled": True, "sender": "alarms@example.com"})
    assert "staging.yaml: monitoring.ses_email.recipients: is empty while enabled is true" in message


def test_malformed_addresses_are_refused(settings_dir: Path) -> None:
    message = refusal(
        settings_dir,
        monitoring__ses_email={"enabled": True, "sender": "alarms at example", "recipients": ["ops@example.com"]},
        monitoring__sns_email={"enabled": True, "recipients": ["ok@example.com", "not-an-address"]},
    )
    assert "staging.yaml: monitoring.ses_email.sender = 'alarms at example': is not an e-mail address" in message
    assert "staging.yaml: monitoring.sns_email.recipients[1] = 'not-an-address': is not an e-mail address" in message


def test_sns_path_without_recipients_is_refused_naming_defaults(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "defaults.yaml", monitoring__sns_email={"enabled": True, "recipients": []})
    message = refusal(settings_dir)
    assert (
        f"staging.yaml: monitoring.sns_email.recipients (inherited from {settings_dir / 'defaults.yaml'}): "
        "is empty while enabled is true"
    ) in message


def test_datapoints_above_evaluation_periods_are_refused(settings_dir: Path) -> None:
    message = refusal(settings_dir, monitoring__alarms={"evaluation_periods": 2, "datapoints_to_alarm": 3})
    assert "monitoring.alarms.datapoints_to_alarm = 3: is above evaluation_periods (2)" in message


def test_every_log_group_of_every_template_expires_and_is_encrypted() -> None:
    groups = 0
    for env, layer, stack in all_stacks():
        for name, group in resources(stack.body, "AWS::Logs::LogGroup").items():
            props = group["Properties"]
            assert props.get("RetentionInDays", 0) > 0, f"{env}/{layer} {name} never expires"
            assert "KmsKeyId" in props, f"{env}/{layer} {name} is not encrypted with a customer managed key"
            groups += 1
        # A function without a log group of its own would get Lambda's: unencrypted, kept forever.
        for name, function in resources(stack.body, "AWS::Lambda::Function").items():
            target = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            assert stack.body["Resources"][target]["Type"] == "AWS::Logs::LogGroup", f"{env}/{layer} {name}"
    assert groups > 0


@pytest.mark.parametrize("env", [e for e in ENVIRONMENTS if e != "dev"])  # dev: monitoring.dashboard false
def test_the_dashboard_shows_alb_services_database_and_cloudfront(stacks, env) -> None:
    (dashboard,) = resources(stacks[env]["dashboard"].body, "AWS::CloudWatch::Dashboard").values()
    text, variables = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    assert set(variables) == {"Alb", "Cluster", "Database", "Distribution"}
    body = json.loads(text)
    titles = [w["properties"]["title"] for w in body["widgets"]]
    for expected in ("ALB requests", "ALB errors", "Service CPU %", "Service memory %", "Service running tasks"):
        assert expected in titles
    regions = {w["properties"]["title"]: w["properties"]["region"] for w in body["widgets"]}
    assert regions["CloudFront requests"] == regions["CloudFront error rate %"] == "us-east-1"
    assert any(m[:2] == ["AWS/RDS", "CPUUtilization"] for w in body["widgets"] for m in w["properties"]["metrics"])


def run_mailer(code: str, event: dict[str, Any]) -> dict[str, Any]:
    """Run the inline mailer with a stand-in boto3 and return what it asked SES to send."""
    sent: dict[str, Any] = {}

    class FakeSes:
        def send_email(self, **kwargs: Any) -> None:
            sent.update(kwargs)

    fake = types.ModuleType("boto3")
    fake.client = lambda name: FakeSes()  # type: ignore[attr-defined]
    saved = sys.modules.get("boto3")
    sys.modules["boto3"] = fake
    try:
        namespace: dict[str, Any] = {}
        exec(compile(code, "index.py", "exec"), namespace)
        namespace["handler"](event, None)
    finally:
        if saved is None:
            del sys.modules["boto3"]
        else:
            sys.modules["boto3"] = saved
    return sent


def test_the_mailer_writes_a_readable_mail_about_an_alarm(environments) -> None:
    code = monitoring.mailer_code(environments["prod"])
    assert len(code) <= 4096  # CloudFormation's limit on inline code
    event = {
        "detail-type": "CloudWatch Alarm State Change",
        "region": "eu-west-1",
        "detail": {
            "alarmName": "shop-prod-monitoring-AlbElb5xxAlarm-ABC",
            "state": {
                "value": "ALARM",
                "reason": "Threshold Crossed",
                "reasonData": json.dumps({"threshold": 10.0}),
                "timestamp": "2026-11-28T21:00:00Z",
            },
            "previousState": {"value": "OK"},
            "configuration": {
                "description": "prod: more than 10 5xx",
                "metrics": [
                    {
                        "metricStat": {
                            "metric": {
                                "namespace": "AWS/ApplicationELB",
                                "name": "HTTPCode_ELB_5XX_Count",
                                "dimensions": {"LoadBalancer": "app/x/1"},
                            },
                            "stat": "Sum",
                            "period": 60,
                        }
                    }
                ],
            },
        },
    }
    sent = run_mailer(code, event)
    assert sent["FromEmailAddress"] == "alarms@shop.example.com"
    assert sent["Destination"] == {"ToAddresses": ["oncall@shop.example.com", "ops@shop.example.com"]}
    assert sent["Content"]["Simple"]["Subject"]["Data"] == "[shop prod] ALARM: shop-prod-monitoring-AlbElb5xxAlarm-ABC"
    text = sent["Content"]["Simple"]["Body"]["Text"]["Data"]
    for expected in (
        "Environment: shop prod",
        "State: OK -> ALARM",
        "Metric: AWS/ApplicationELB HTTPCode_ELB_5XX_Count (LoadBalancer=app/x/1), Sum over 60 s",
        "Threshold: 10.0",
        "Console: https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1"
        "#alarmsV2:alarm/shop-prod-monitoring-AlbElb5xxAlarm-ABC",
    ):
        assert expected in text.split("\n"), expected


def test_the_mailer_forwards_an_ecs_failure(environments) -> None:
    sent = run_mailer(
        monitoring.mailer_code(environments["prod"]),
        {"detail-type": "ECS Deployment State Change", "region": "eu-west-1", "resources": ["arn:svc"],
         "detail": {"eventName": "SERVICE_DEPLOYMENT_FAILED"}},
    )  # fmt: skip
    assert sent["Content"]["Simple"]["Subject"]["Data"] == "[shop prod] ECS Deployment State Change"
    assert "SERVICE_DEPLOYMENT_FAILED" in sent["Content"]["Simple"]["Body"]["Text"]["Data"]


def test_no_alarm_or_rule_names_itself(stacks) -> None:
    """Names are left to CloudFormation ({stack}-{LogicalId}-...), which the mailer's rule relies on."""
    for env in ENVIRONMENTS:
        for layer, stack in stacks[env].items():
            for name, resource in resources(stack.body).items():
                if resource["Type"] in (*ALARM_TYPES, "AWS::Events::Rule"):
                    assert not {"AlarmName", "Name"} & set(resource["Properties"]), f"{env}/{layer} {name}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cloudfront_5xx_alarm_lives_in_us_east_1_with_a_topic_there(stacks, environments, env) -> None:
    settings = environments[env]
    stack = stacks[env]["edge-alarms"]
    assert stack.region == "us-east-1"
    assert f"shop-{env}-edge" in stack.depends_on
    found = alarms(stack.body)
    assert set(found) == {"CloudFront5xxAlarm", *(["ApiFailoverAlarm"] if env == "prod" else [])}  # see test_dr
    props = found["CloudFront5xxAlarm"]["Properties"]
    assert (props["Namespace"], props["MetricName"]) == ("AWS/CloudFront", "5xxErrorRate")
    assert props["Dimensions"] == [
        {"Name": "DistributionId", "Value": {"Ref": "DistributionId"}},
        {"Name": "Region", "Value": "Global"},
    ]
    assert props["Threshold"] == settings.monitoring.alarms.cloudfront_5xx_percent
    assert stack.parameters["DistributionId"] == {"stack": f"shop-{env}-edge", "output": "DistributionId"}
    assert resources(stack.body, "AWS::SNS::Topic")
    subscriptions = resources(stack.body, "AWS::SNS::Subscription")
    expected = settings.monitoring.sns_email.recipients if settings.monitoring.sns_email.enabled else []
    assert sorted(s["Properties"]["Endpoint"] for s in subscriptions.values()) == sorted(expected)
    # With the SES path on, its state changes travel to the mailer's region; otherwise no rule.
    rules = resources(stack.body, "AWS::Events::Rule")
    if settings.monitoring.ses_email.enabled:
        (rule,) = rules.values()
        (target,) = rule["Properties"]["Targets"]
        assert target["Arn"] == {
            "Fn::Sub": "arn:${AWS::Partition}:events:%s:${AWS::AccountId}:event-bus/default" % settings.region
        }
    else:
        assert not rules
