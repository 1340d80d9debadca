"""Values the settings accept are values troposphere, cfn-lint and AWS accept (issue 16): each
example the settings used to let through to a crash or a failed deploy is refused by name here."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BUILT, SETTINGS, edit_yaml, refusal

from infra_templates.config import (
    RESERVED_SERVICE_NAMES,
    RESERVED_SERVICE_PREFIXES,
    SettingsError,
    load_environment,
    load_settings,
)
from infra_templates.pipeline import build_project_stacks
from templates import LAYERS, PROJECT_LAYERS
from templates.data import ServerlessV2Scaling

EXAMPLES = [
    # RDS: "Must be at least 30 minutes" (CreateDBCluster, PreferredBackupWindow)
    (
        {"database__preferred_backup_window": "02:00-02:10"},
        "preferred_backup_window = '02:00-02:10': must last at least 30 minutes (RDS)",
    ),
    # RDS: the maintenance window's hours are hh24
    ({"database__preferred_maintenance_window": "sun:29:00-sun:29:30"}, "preferred_maintenance_window = 'sun:29:00"),
    (
        {"database__preferred_maintenance_window": "sun:03:00-sun:03:10"},
        "preferred_maintenance_window = 'sun:03:00-sun:03:10': must last at least 30 minutes (RDS)",
    ),
    ({"database__preferred_maintenance_window": "sat:03:00-xyz:04:00"}, "preferred_maintenance_window = 'sat:03:00-x"),
    # RDS: "Must not conflict with the preferred maintenance window"
    (
        {
            "database__preferred_backup_window": "03:00-04:00",
            "database__preferred_maintenance_window": "sun:03:30-sun:04:30",
        },
        "preferred_backup_window = '03:00-04:00': overlaps preferred_maintenance_window (sun:03:30-sun:04:30)",
    ),
    (  # a daily backup window crossing midnight and a maintenance window crossing Sunday night
        {
            "database__preferred_backup_window": "23:45-00:30",
            "database__preferred_maintenance_window": "sun:23:00-mon:00:15",
        },
        "overlaps preferred_maintenance_window",
    ),
    # ALB Matcher.HttpCode: 200-499
    ({"services__api__health_check__healthy_codes": "100-599"}, "100-599 is outside what a load balancer accepts"),
    ({"services__api__health_check__healthy_codes": "200,500"}, "500 is outside what a load balancer accepts"),
    ({"services__api__health_check__healthy_codes": "299-200"}, "299-200 is outside"),
    # Aurora Serverless v2: at most 256 ACUs
    ({"database__capacity": {"mode": "serverless", "min_acu": 1, "max_acu": 512}}, "max_acu = 512"),
    # AWS tagging limits: values at most 256 characters, 50 tags a resource (4 are the generator's)
    ({"tags__Owner": "x" * 257}, "tags.Owner = 'xxxxxxxxxx"),
    ({"tags": {f"T{i}": "v" for i in range(46)}}, "tags: has 47 tags; a resource takes 50"),  # + defaults' CostCenter
    # ECS: ARM64 tasks don't run on Fargate Spot
    (
        {
            "services__api__architecture": "ARM64",
            "platform__capacity": {"fargate_base": 0, "fargate_weight": 0, "spot_weight": 1},
        },
        "services.api.architecture = 'ARM64': ARM64 tasks cannot run on Fargate Spot",
    ),
    (
        {
            "services__api__architecture": "ARM64",
            "services__api__capacity": {"fargate_base": 1, "fargate_weight": 1, "spot_weight": 3},
        },
        "ARM64 tasks cannot run on Fargate Spot",
    ),
    # a service named like a project stack
    (
        {"services__infrastructure": {"port": 80, "cpu": 256, "memory": 512, "routing": {"paths": ["/i/*"]}}},
        "services.infrastructure: would give",
    ),
    (
        {"services__replication": {"port": 80, "cpu": 256, "memory": 512, "routing": {"paths": ["/r/*"]}}},
        "services.replication: would give",
    ),
    (
        {"services__artifacts-us-east-1": {"port": 80, "cpu": 256, "memory": 512, "routing": {"paths": ["/a/*"]}}},
        "services.artifacts-us-east-1: would give",
    ),
    # delivery: an unknown stage refused, never dropped
    ({"delivery__stages": ["dev", "staging", "./prod"]}, "delivery.stages[2] = './prod': is not an environment name"),
    (
        {"edge__aliases": ["staging.shop.example.com", "staging.shop.example.com"]},
        "edge.aliases[1] = 'staging.shop.example.com': is listed twice",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), EXAMPLES, ids=[e for _, e in EXAMPLES])
def test_a_value_aws_or_troposphere_refuses_is_refused_by_the_settings(
    settings_dir: Path, changes: dict[str, object], expected: str
) -> None:
    edit_yaml(settings_dir / "staging.yaml", **changes)
    message = refusal(settings_dir)
    assert expected in message
    assert "staging.yaml" in message.split(expected)[0].splitlines()[-1]  # the line names the file


@pytest.mark.parametrize(
    "changes",
    [
        {
            "database__preferred_backup_window": "23:45-00:15",
            "database__preferred_maintenance_window": "tue:03:00-tue:03:30",
        },
        {"services__api__health_check__healthy_codes": "200-499"},
        {"services__api__health_check__healthy_codes": "200,202,300-399"},
        {"tags": {f"T{i}": "v" * 256 for i in range(45)}},  # 46 with defaults' CostCenter: 50 with the generator's
        {
            "services__api__architecture": "ARM64",
            "services__api__capacity": {"fargate_base": 1, "fargate_weight": 1, "spot_weight": 0},
        },
        {
            "services__replicas": {
                "port": 80,
                "cpu": 256,
                "memory": 512,
                "desired_count": 1,
                "autoscaling": {"min": 1, "max": 2, "cpu_target": 60, "requests_per_target": 100},
                "routing": {"paths": ["/r/*"]},
            }
        },
    ],
)
def test_the_edges_of_those_limits_are_accepted(settings_dir: Path, changes: dict[str, object]) -> None:
    edit_yaml(settings_dir / "staging.yaml", **changes)
    load_environment("staging", settings_dir)


def test_256_acus_build_the_data_stack(settings_dir: Path) -> None:
    """Up to 256 ACUs ("Requirements and limitations for Aurora Serverless v2"); troposphere 4.11 caps at
    128, worked around in one place (templates/data.py ServerlessV2Scaling)."""
    edit_yaml(
        settings_dir / "staging.yaml",
        database__capacity={"mode": "serverless", "min_acu": 2, "max_acu": 256, "readers": 1},
    )
    env = load_environment("staging", settings_dir)
    data = next(spec for spec in LAYERS if spec.name == "data")
    body = data.build(env).to_dict()
    scaling = [
        r["Properties"]["ServerlessV2ScalingConfiguration"]
        for r in body["Resources"].values()
        if r["Type"] == "AWS::RDS::DBCluster"
    ]
    assert scaling == [{"MinCapacity": 2, "MaxCapacity": 256}]
    assert ServerlessV2Scaling(MinCapacity=0.5, MaxCapacity=256).to_dict() == {"MinCapacity": 0.5, "MaxCapacity": 256}


def test_a_cloudfront_alias_used_by_two_environments_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", edge__aliases=["www.shop.example.com"])
    with pytest.raises(SettingsError) as caught:
        load_settings(settings_dir)
    assert (
        f"{settings_dir / 'staging.yaml'}: edge.aliases[0] = 'www.shop.example.com': is also prod's alias "
        f"({settings_dir / 'prod.yaml'}); a host name is the alias of one CloudFront distribution only: give the "
        "environment that does not serve it yet another"
    ) in caught.value.problems


def test_an_unknown_stage_with_a_valid_name_gets_a_suggestion(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "defaults.yaml", delivery__stages=["dev", "staging", "prd"], delivery__approval_before=[])
    with pytest.raises(SettingsError) as caught:
        load_settings(settings_dir)
    assert any(
        "delivery.stages[2] = 'prd': is not an environment; did you mean 'prod'?" in p for p in caught.value.problems
    )


def test_the_reserved_service_names_are_exactly_the_project_stacks_a_service_stack_could_take() -> None:
    """Derived from the project layers: a per-service layer P names its stacks P-<service>; every
    other project stack named P-<rest> makes <rest> (or, for a per-region layer, <rest>-<region>) a
    name no service may have."""
    stacks = build_project_stacks(BUILT.project, PROJECT_LAYERS)
    per_service = {spec.name for spec in PROJECT_LAYERS if spec.per_service}
    services = set(BUILT.project.services)
    taken = set()
    for stack in stacks:
        for prefix in per_service:
            rest = stack.layer.removeprefix(prefix + "-")
            if stack.layer.startswith(prefix + "-") and rest not in services:
                taken.add(rest)
    assert taken, "the project has stacks a service stack could collide with"
    for rest in taken:
        assert rest in RESERVED_SERVICE_NAMES or rest.startswith(RESERVED_SERVICE_PREFIXES), rest
    assert SETTINGS.is_dir()
