"""Delivery settings: the release pipelines, their source connection and the deployment controller."""

import re
from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from infra_templates.settings.common import (
    ENVIRONMENT_NAME,
    FieldValueError,
    ManyFieldsError,
    Strict,
    check_retention,
    no_items,
)

TrafficShift = Literal[
    "CodeDeployDefault.ECSAllAtOnce",
    "CodeDeployDefault.ECSCanary10Percent5Minutes",
    "CodeDeployDefault.ECSCanary10Percent15Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
]
Strategy = Literal["blue-green", "rolling"]
ECS_MAX_BAKE_MINUTES = 1440


class Deployment(Strict):
    """How this environment's services take a new release (a service may override the strategy)."""

    strategy: Strategy = Field(
        description="blue-green: traffic shifts between two target groups (by ECS or CodeDeploy: controller); "
        "rolling: ECS replaces tasks in place, with the circuit breaker rolling back."
    )
    traffic_shift: TrafficShift = Field(
        default="CodeDeployDefault.ECSCanary10Percent5Minutes",
        description="The traffic shift of a blue-green release: CodeDeploy's configuration name; with controller "
        "ecs, AllAtOnce is BLUE_GREEN, Canary/Linear the ECS CANARY/LINEAR strategy with the same percent and minutes.",
    )
    termination_wait_minutes: int = Field(
        default=5,
        ge=0,
        le=2880,
        description="Minutes the old (blue) tasks keep running after the shift (the ECS bake time).",
    )
    test_listener_port: int = Field(
        default=8443, ge=1024, le=65535, description="ALB port of the test listener, reachable from the VPC only."
    )
    controller: Literal["ecs", "codedeploy"] = Field(
        default="ecs",
        description="Who shifts a blue-green service's traffic. ecs: ECS itself (DeploymentConfiguration.Strategy "
        "BLUE_GREEN, CANARY or LINEAR from traffic_shift), the stack is the service's one owner and every change is "
        "a stack update; codedeploy: a CodeDeploy deployment group, which then owns the service's task definition, "
        "load balancers, network configuration and capacity mix.",
    )

    @model_validator(mode="after")
    def _bake_time(self) -> "Deployment":
        # ECS API reference, DeploymentConfiguration.bakeTimeInMinutes: 0 to 1440 minutes.
        if self.controller == "ecs" and self.termination_wait_minutes > ECS_MAX_BAKE_MINUTES:
            raise FieldValueError(
                ("termination_wait_minutes",),
                f"is the ECS bake time with controller ecs: at most {ECS_MAX_BAKE_MINUTES} minutes",
                self.termination_wait_minutes,
            )
        return self

    def ecs_strategy(self) -> tuple[str, float, int]:
        """``(Strategy, percent, step bake minutes)`` for the ECS controller, from ``traffic_shift``:
        AllAtOnce is BLUE_GREEN (percent and minutes 0), CanaryXPercentYMinutes is CANARY (X %, Y
        minutes), LinearXPercentEveryYMinutes is LINEAR. ECS API reference, CanaryConfiguration and
        LinearConfiguration."""
        shape = r"CodeDeployDefault\.ECS(Canary|Linear)(\d+)Percent(?:Every)?(\d+)Minutes?"
        match = re.fullmatch(shape, self.traffic_shift)
        if match is None:
            return ("BLUE_GREEN", 0.0, 0)
        return (match.group(1).upper(), float(match.group(2)), int(match.group(3)))


class Connection(Strict):
    """A CodeStar connection (GitHub, GitLab, Bitbucket), created and authorised once in the console."""

    provider: Literal["GitHub", "GitHubEnterpriseServer", "GitLab", "Bitbucket"]
    arn: str = Field(
        pattern=r"^arn:aws(-[a-z]+)*:(codestar-connections|codeconnections):[a-z0-9-]+:[0-9]{12}:connection/[0-9a-f-]{36}$",
        description="The connection's ARN, in the registry's account.",
    )
    repositories: dict[str, str] = Field(
        description="Per service, the repository id the connection reads: owner/name.",
    )
    infrastructure: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$",
        description="The repository id (owner/name) of these templates' own repository: the source of the "
        "infrastructure pipeline.",
    )

    @field_validator("repositories")
    @classmethod
    def _repository_ids(cls, repositories: dict[str, str]) -> dict[str, str]:
        for service, repository in repositories.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+", repository):
                raise FieldValueError((service,), "is not a repository id: owner/name", repository)
        return repositories


class Delivery(Strict):
    """The release pipelines, one per service, in the registry's account and region."""

    stages: list[str] = Field(min_length=1, description="Environments a release goes through, in order.")
    approval_before: list[str] = Field(
        default_factory=no_items, description="Stages that wait for a manual approval (notified by SNS) first."
    )
    branch: str = Field(default="main", pattern=r"^[A-Za-z0-9._/-]{1,100}$", description="The branch released.")
    connection: Connection | None = Field(
        default=None,
        description="Source from GitHub/GitLab/Bitbucket; without it each service gets a CodeCommit repository.",
    )
    build_image: str = Field(default="aws/codebuild/amazonlinux-x86_64-standard:5.0", pattern=r"^[a-z0-9./:_-]+$")
    build_compute: Literal["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE"] = (
        "BUILD_GENERAL1_SMALL"
    )
    test_command: str = Field(
        default="make test", min_length=1, description="What the build runs before building the image."
    )
    artifact_expiration_days: int = Field(default=30, ge=1, le=3650, description="Days pipeline artifacts are kept.")
    log_retention_days: int = Field(default=90, description="Retention of the builds' log groups.")

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, days: int) -> int:
        return check_retention(days)

    @model_validator(mode="after")
    def _stages(self) -> "Delivery":
        problems = []
        seen: set[str] = set()
        for index, stage in enumerate(self.stages):
            if not re.fullmatch(ENVIRONMENT_NAME, stage):
                plain = re.sub(r"[^a-z0-9]", "", stage.lower())
                problems.append(
                    FieldValueError(
                        ("stages", index),
                        "is not an environment name (the name of its file without .yaml: lower-case letters and "
                        "digits, starting with a letter)" + (f"; did you mean {plain!r}?" if plain else ""),
                        stage,
                    )
                )
            if stage in seen:
                problems.append(
                    FieldValueError(("stages", index), "is listed twice; a release visits a stage once", stage)
                )
            seen.add(stage)
        for index, stage in enumerate(self.approval_before):
            if stage not in seen:
                problems.append(
                    FieldValueError(
                        ("approval_before", index), f"is not one of delivery.stages ({', '.join(self.stages)})", stage
                    )
                )
        if problems:
            raise ManyFieldsError(problems)
        return self
