"""Paging matches user pain, read from the templates themselves: a small CloudWatch evaluator applies
each alarm's statistic, threshold, comparison and TreatMissingData to a scenario of datapoints, then
evaluates the paging composite alarms' AlarmRule (ALARM(x) AND/OR/NOT ...). A scenario is one
evaluation period's value per metric (and statistic), or None for "no datapoint".

How CloudWatch decides (CloudWatch User Guide, "Using Amazon CloudWatch alarms": "Configuring how
CloudWatch alarms treat missing data" and "Alarm rule" of composite alarms): a datapoint breaches
when ``value <comparison> threshold``; a missing one is breaching, not breaching, or leaves the state
as it is (``missing``/``ignore``: here, OK, the state of a freshly created alarm after it has data).
Which metric is missing when: ECS publishes a service's CPUUtilization only while it has RUNNING
tasks (ECS Developer Guide, "Amazon ECS CloudWatch metrics"); the load balancer publishes its
counts only when requests flow (Elastic Load Balancing, "CloudWatch metrics for your Application
Load Balancer"); an Aurora cluster with no instance (pilot light) or paused at 0 ACU reports no
instance metrics (Aurora User Guide, "Scaling to Zero ACUs with automatic pause and resume").
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import BUILT, build_all, edit_yaml, resources

from infra_templates.naming import release_name

# metric name (or "namespace:metric name", which wins) -> value, None (no datapoint), or
# {statistic: value|None}
Scenario = Mapping[str, Any]

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}

# Everything well: traffic flows, two healthy targets per service, tasks run, the database is up.
HEALTHY: dict[str, Any] = {
    "HTTPCode_ELB_5XX_Count": 0,
    "HTTPCode_Target_5XX_Count": None,
    "RejectedConnectionCount": None,
    "TargetResponseTime": 0.05,
    "HealthyHostCount": 2,
    "UnHealthyHostCount": 0,
    "AWS/ECS:CPUUtilization": {"Average": 20, "SampleCount": 6},
    "AWS/RDS:CPUUtilization": 30,
    "MemoryUtilization": 40,
    "RunningTaskCount": 2,
    "FreeableMemory": 8 * 1024**3,
    "DatabaseConnections": 10,
    "AuroraReplicaLagMaximum": 20,
    "ACUUtilization": 30,
    "AuroraGlobalDBReplicationLag": 1000,
    "ErrorPortAllocation": 0,
    "PacketsDropCount": 0,
    "OperationsFailedReplication": None,
    "ReplicationLatency": None,
    "Errors": None,
    "ApproximateNumberOfMessagesVisible": None,
    "ApproximateAgeOfOldestMessage": 5,  # a worker keeps up with its queue
    "5xxErrorRate": 0.1,
    "HealthCheckStatus": 1,
}


def _metric_of(alarm: dict[str, Any]) -> tuple[str, str]:
    """(metric name, statistic) of a metric alarm, or of the metrics a metric-math alarm sums."""
    return _namespaced(alarm)[1:]


def _namespaced(alarm: dict[str, Any]) -> tuple[str, str, str]:
    """(namespace, metric name, statistic)."""
    props = alarm["Properties"]
    if "MetricName" in props:
        return props["Namespace"], props["MetricName"], props.get("Statistic") or props["ExtendedStatistic"]
    stats = [q["MetricStat"] for q in props["Metrics"] if "MetricStat" in q]
    names = {(s["Metric"]["Namespace"], s["Metric"]["MetricName"]) for s in stats}
    assert len(names) == 1, props["Metrics"]
    namespace, name = names.pop()
    return namespace, name, stats[0]["Stat"]


def metric_state(alarm: dict[str, Any], scenario: Scenario) -> str:
    """ALARM or OK: the alarm's verdict on one period of ``scenario``."""
    props = alarm["Properties"]
    namespace, metric, statistic = _namespaced(alarm)
    key = f"{namespace}:{metric}" if f"{namespace}:{metric}" in scenario else metric
    assert key in scenario, f"the scenario says nothing about {metric}"
    value = scenario[key]
    if isinstance(value, dict):
        value = value[statistic]
    if value is None:
        return "ALARM" if props["TreatMissingData"] == "breaching" else "OK"
    return "ALARM" if COMPARISONS[props["ComparisonOperator"]](float(value), float(props["Threshold"])) else "OK"


def composite_state(alarm: dict[str, Any], states: Mapping[str, str]) -> str:
    """Evaluate a composite alarm's rule (``Fn::Sub`` of ``ALARM("${X}")`` terms, X a GetAtt of an
    alarm of the same template) over the metric alarms' ``states``."""
    text, variables = alarm["Properties"]["AlarmRule"]["Fn::Sub"]

    def term(match: re.Match[str]) -> str:
        logical_id = variables[match.group(1)]["Fn::GetAtt"][0]
        return str(states[logical_id] == "ALARM")

    expression = re.sub(r'ALARM\("\$\{(\w+)\}"\)', term, text)
    expression = expression.replace("AND", "and").replace("OR", "or").replace("NOT", "not")
    assert re.fullmatch(r"[\sTrueFalsandornt()]*", expression), expression
    return "ALARM" if eval(expression) else "OK"


def evaluate(body: dict[str, Any], scenario: Scenario) -> dict[str, str]:
    """Every alarm of one template (metric and composite) -> its state under ``scenario``."""
    states = {k: metric_state(v, scenario) for k, v in resources(body, "AWS::CloudWatch::Alarm").items()}
    for logical_id, alarm in resources(body, "AWS::CloudWatch::CompositeAlarm").items():
        states[logical_id] = composite_state(alarm, states)
    return states


def pages(env: str, scenario: Scenario) -> dict[str, str]:
    """The state of every paging composite alarm of ``env`` (the environment's and each service's),
    by ``stack/logical id``; each must notify the paging topic."""
    found = {}
    for layer, stack in BUILT.stacks[env].items():
        states = evaluate(stack.body, scenario)
        for logical_id, alarm in resources(stack.body, "AWS::CloudWatch::CompositeAlarm").items():
            actions = alarm["Properties"]["AlarmActions"]
            if any("PagingTopic" in str(action) for action in actions):
                found[f"{layer}/{logical_id}"] = states[logical_id]
    assert found, f"{env} has no paging alarm"
    return found


def with_(**changes: Any) -> dict[str, Any]:
    return {**HEALTHY, **changes}


PAGED_ENVIRONMENTS = ["dev", "staging", "prod"]


@pytest.mark.parametrize("env", PAGED_ENVIRONMENTS)
def test_nothing_pages_while_all_is_well(env: str) -> None:
    assert set(pages(env, HEALTHY).values()) == {"OK"}


@pytest.mark.parametrize("env", PAGED_ENVIRONMENTS)
@pytest.mark.parametrize("traffic", [True, False])
def test_all_targets_gone_pages(env: str, traffic: bool) -> None:
    # With traffic the load balancer answers 503 itself; without, only target health speaks. The
    # idle colour's HealthyHostCount, or both colours', may be reported as 0 or not at all.
    for healthy in (0, None):
        scenario = with_(
            HealthyHostCount=healthy,
            UnHealthyHostCount=2,
            HTTPCode_ELB_5XX_Count=500 if traffic else None,
            TargetResponseTime=None,
        )
        states = pages(env, scenario)
        assert "ALARM" in states.values(), states
        for layer in BUILT.environments[env].web_services:  # those behind the load balancer
            assert states[f"svc-{layer}/UsersAffectedAlarm"] == "ALARM", (layer, healthy, states)


@pytest.mark.parametrize("env", PAGED_ENVIRONMENTS)
def test_load_balancer_5xx_without_service_5xx_pages(env: str) -> None:
    limit = BUILT.environments[env].monitoring.alarms.alb_5xx_count
    states = pages(env, with_(HTTPCode_ELB_5XX_Count=limit + 1, HTTPCode_Target_5XX_Count=None))
    assert states["monitoring/PagingAlarm"] == "ALARM"
    # ...which the per-service rule alone (target 5xx while short of targets) would not have seen
    assert {v for k, v in states.items() if k.startswith("svc-")} == {"OK"}


@pytest.mark.parametrize("env", PAGED_ENVIRONMENTS)
def test_zero_running_tasks_pages_with_or_without_container_insights(env: str) -> None:
    # Only what ECS stops publishing when no task runs: the target group still reports its last
    # healthy count, so the task metrics alone must page.
    scenario = with_(**{"AWS/ECS:CPUUtilization": None, "MemoryUtilization": None, "RunningTaskCount": None})
    states = pages(env, scenario)
    for name, service in BUILT.environments[env].services.items():
        if service.kind == "job":  # no task between runs, by design: nothing to page on
            assert f"svc-{name}/UsersAffectedAlarm" not in states
            continue
        assert states[f"svc-{name}/UsersAffectedAlarm"] == "ALARM", (name, states)


def test_dev_has_container_insights_off_and_no_alarm_waiting_on_it() -> None:
    """The fixture dev turns Container Insights off: no alarm may wait for RunningTaskCount there."""
    assert BUILT.environments["dev"].platform.container_insights == "disabled"
    for stack in BUILT.stacks["dev"].values():
        for alarm in resources(stack.body, "AWS::CloudWatch::Alarm").values():
            assert _metric_of(alarm)[0] != "RunningTaskCount"


@pytest.mark.parametrize("env", PAGED_ENVIRONMENTS)
def test_p99_latency_past_the_target_pages(env: str) -> None:
    target = BUILT.environments[env].monitoring.alarms.alb_p99_response_seconds
    assert pages(env, with_(TargetResponseTime=target + 0.5))["monitoring/PagingAlarm"] == "ALARM"
    assert pages(env, with_(TargetResponseTime=target - 0.01))["monitoring/PagingAlarm"] == "OK"


def _resolve(node: Any, values: Mapping[str, str]) -> Any:
    """Fn::Sub (string or [string, vars]) and Fn::ImportValue with stand-in ``values``."""
    if isinstance(node, dict) and "Fn::Sub" in node:
        text, variables = node["Fn::Sub"] if isinstance(node["Fn::Sub"], list) else (node["Fn::Sub"], {})
        lookup = {**values, **{k: _resolve(v, values) for k, v in variables.items()}}
        return re.sub(r"\$\{([\w:]+)\}", lambda m: lookup[m.group(1)], text)
    if isinstance(node, dict) and "Fn::ImportValue" in node:
        return values["import"]
    return node


def _matches(pattern: Any, event: Any, values: Mapping[str, str]) -> bool:
    """EventBridge pattern matching for what the rules use: value lists, ``prefix``, nested fields
    (EventBridge User Guide, "Amazon EventBridge event patterns")."""
    if isinstance(pattern, dict):
        return isinstance(event, dict) and all(k in event and _matches(v, event[k], values) for k, v in pattern.items())
    candidates = event if isinstance(event, list) else [event]
    for allowed in pattern:
        resolved = _resolve(allowed, values)
        for candidate in candidates:
            if isinstance(resolved, dict) and "prefix" in resolved:
                if str(candidate).startswith(_resolve(resolved["prefix"], values)):
                    return True
            elif candidate == resolved:
                return True
    return False


@pytest.mark.parametrize("env", PAGED_ENVIRONMENTS)
def test_a_failed_release_pages(env: str) -> None:
    values = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "111111111111", "import": "c"}
    environment = BUILT.environments[env]
    failures = {
        "aws.ecs": {
            "source": "aws.ecs",
            "detail-type": "ECS Deployment State Change",
            "resources": ["arn:aws:ecs:eu-west-1:111111111111:service/c/api"],
            "detail": {"eventName": "SERVICE_DEPLOYMENT_FAILED", "eventType": "ERROR"},
        },
    }
    for name in environment.codedeploy_services:
        failures[f"codedeploy {name}"] = {
            "source": "aws.codedeploy",
            "detail-type": "CodeDeploy Deployment State-change Notification",
            "resources": [],
            "detail": {"state": "FAILURE", "application": release_name(environment.project, env, name)},
        }
    body = BUILT.stacks[env]["monitoring"].body
    rules = resources(body, "AWS::Events::Rule")
    for kind, event in failures.items():
        if kind == "aws.ecs" and all(environment.codedeploy(n) for n in environment.services):
            continue  # no service of the ECS controller: its event cannot come (and has no rule)
        paging = [
            logical_id
            for logical_id, rule in rules.items()
            if _matches(rule["Properties"]["EventPattern"], event, values)
            and {"Ref": "PagingTopic"} in [t["Arn"] for t in rule["Properties"]["Targets"]]
        ]
        assert paging, f"{env}: a failed release ({kind}) reaches no rule that pages"
    # ...while a service's other errors notify without paging
    error = {
        "source": "aws.ecs",
        "detail-type": "ECS Service Action",
        "detail": {"eventType": "ERROR", "clusterArn": "c"},
    }
    for rule in rules.values():
        if _matches(rule["Properties"]["EventPattern"], error, values):
            assert {"Ref": "PagingTopic"} not in [t["Arn"] for t in rule["Properties"]["Targets"]]


def test_paging_and_notifications_are_separate_encrypted_topics() -> None:
    for env in BUILT.environments:
        body = BUILT.stacks[env]["monitoring"].body
        topics = resources(body, "AWS::SNS::Topic")
        assert {"AlarmTopic", "PagingTopic"} <= set(topics)
        for topic in ("AlarmTopic", "PagingTopic"):
            assert "KmsMasterKeyId" in topics[topic]["Properties"]
        policies = resources(body, "AWS::SNS::TopicPolicy")
        assert {str(p["Properties"]["Topics"]) for p in policies.values()} >= {
            str([{"Ref": "AlarmTopic"}]),
            str([{"Ref": "PagingTopic"}]),
        }
        # only the composite alarms page; every metric alarm notifies
        for stack in BUILT.stacks[env].values():
            for alarm in resources(stack.body, "AWS::CloudWatch::Alarm").values():
                # (a Route 53 health check's alarm has no action at all: tests/test_monitoring.py)
                assert "PagingTopic" not in str(alarm["Properties"].get("AlarmActions", []))


# --- postures that guarantee silence ---------------------------------------------------------------


def _at_rest(env: str) -> dict[str, Any]:
    """What ``env`` reports when it is exactly as its posture intends and nobody uses it: no traffic
    (the load balancer reports no counts), services with a minimum of 0 have no task and no target;
    a pilot-light or paused (0 ACU) database reports nothing; the global database replicates."""
    environment = BUILT.environments[env]
    scenario = with_(HTTPCode_ELB_5XX_Count=None, TargetResponseTime=None)
    capacity = environment.database.capacity
    pilot_light = environment.dr is not None and environment.dr.posture == "pilot-light"
    if pilot_light or getattr(capacity, "min_acu", None) == 0:
        for metric in ("AWS/RDS:CPUUtilization", "FreeableMemory", "DatabaseConnections", "AuroraReplicaLagMaximum"):
            scenario[metric] = None
        scenario["ACUUtilization"] = None
    return scenario


def test_dr_pilot_light_has_no_alarm_in_alarm_by_design() -> None:
    environment = BUILT.environments["dr"]
    assert environment.dr is not None and environment.dr.posture == "pilot-light"
    scenario = _at_rest("dr")
    # The pilot-light database has no instance: the RDS metrics are absent, whoever reads them.
    rds_alarms = 0
    for layer, stack in BUILT.stacks["dr"].items():
        states = evaluate(stack.body, _rds_silent(stack.body, scenario))
        assert {k for k, v in states.items() if v == "ALARM"} == set(), layer
        for alarm in resources(stack.body, "AWS::CloudWatch::Alarm").values():
            if (
                alarm["Properties"].get("Namespace") == "AWS/RDS"
                and _metric_of(alarm)[0] != "AuroraGlobalDBReplicationLag"
            ):
                rds_alarms += 1
                assert alarm["Properties"]["TreatMissingData"] != "breaching", alarm
    assert rds_alarms > 0, "dr's database alarms were not found: the test would prove nothing"


def _rds_silent(body: dict[str, Any], scenario: dict[str, Any]) -> dict[str, Any]:
    """``scenario`` with every AWS/RDS metric except the global lag absent (no instance)."""
    silent = dict(scenario)
    for alarm in resources(body, "AWS::CloudWatch::Alarm").values():
        if alarm["Properties"].get("Namespace") == "AWS/RDS":
            metric = _metric_of(alarm)[0]
            if metric != "AuroraGlobalDBReplicationLag":
                silent[f"AWS/RDS:{metric}"] = None
    return silent


def test_a_service_scaled_to_zero_in_pilot_light_has_no_alarm_in_alarm(settings_dir: Path) -> None:
    """dr's services may run 0 tasks in pilot light (dr.posture): then nothing of theirs alarms."""
    edit_yaml(
        settings_dir / "dr.yaml",
        services__web={"desired_count": 0, "autoscaling": {"min": 0, "max": 12}},
        services__api={"desired_count": 0, "autoscaling": {"min": 0, "max": 20}},
        services__payments={"desired_count": 0, "autoscaling": {"min": 0, "max": 6}},
        services__mailer={"desired_count": 0, "autoscaling": {"min": 0, "max": 10}},
    )
    built = build_all(settings_dir)
    scenario = {
        **_at_rest("dr"),
        "HealthyHostCount": 0,
        "UnHealthyHostCount": None,
        "AWS/ECS:CPUUtilization": None,
        "MemoryUtilization": None,
        "RunningTaskCount": None,
    }
    for layer, stack in built.stacks["dr"].items():
        states = evaluate(stack.body, _rds_silent(stack.body, scenario))
        assert {k for k, v in states.items() if v == "ALARM"} == set(), layer


def test_a_paused_serverless_database_alarms_on_nothing() -> None:
    capacity = BUILT.environments["dev"].database.capacity
    assert getattr(capacity, "min_acu", None) == 0
    states = evaluate(BUILT.stacks["dev"]["monitoring"].body, _at_rest("dev"))
    assert {k for k, v in states.items() if v == "ALARM"} == set()


def test_global_database_lag_alarms_against_the_rpo_in_the_secondary_region() -> None:
    environment = BUILT.environments["dr"]
    assert environment.dr is not None
    body = BUILT.stacks["dr"]["monitoring"].body
    alarm = resources(body, "AWS::CloudWatch::Alarm")["GlobalDatabaseReplicationLagAlarm"]
    assert _metric_of(alarm) == ("AuroraGlobalDBReplicationLag", "Maximum")
    rpo_ms = environment.dr.rpo_minutes * 60 * 1000
    assert metric_state(alarm, with_(AuroraGlobalDBReplicationLag=rpo_ms + 1)) == "ALARM"
    assert metric_state(alarm, with_(AuroraGlobalDBReplicationLag=rpo_ms - 1)) == "OK"
    assert metric_state(alarm, with_(AuroraGlobalDBReplicationLag=None)) == "OK"
    assert BUILT.stacks["dr"]["monitoring"].region == environment.region
    for env in ("dev", "staging", "prod"):
        assert "GlobalDatabaseReplicationLagAlarm" not in resources(BUILT.stacks[env]["monitoring"].body)
