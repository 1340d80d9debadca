"""The infrastructure's own pipeline (project layer ``delivery-infrastructure``), in the registry's
account and region: this repository -> ``make test`` (the same gate users run) -> every environment
of ``delivery.stages`` in that order, its stacks in manifest order through CloudFormation change
sets, with a manual approval (notified through the delivery topic) before the environments of
``delivery.approval_before``.

Each environment's stacks are deployed in its own account through the roles of its deployer stack:
the pipeline's role assumes ``{project}-{env}-deployer-action``, which creates the change set with
``{project}-{env}-deployer-cfn`` as CloudFormation's role, and executes it. A stack another folder
holds (a DR environment's primary's data stack) is deployed once, in the first stage that needs
it, from its own folder and with its own environment's roles. Parameters read from another stack's
output (across regions) come from that stack's execute action's output file, through
``Fn::GetParam``.

Not deployed by the pipeline, and why, is written in the template's Metadata
(``InfraTemplatesNotDeployed``): the deployer stacks (the pipeline must not widen its own roles),
stacks with a parameter only a person can give (a CODE_DEPLOY service's ``ImageTag``: the
CloudFormation action cannot keep a parameter's previous value, so it would roll a release back),
and the project's stacks, this one included (no self-update: see the README). A service stack of
the ECS controller is deployed: its ``ImageTag`` is the SSM parameter its release writes, which
CloudFormation resolves on every update, so the pipeline deploys the released tag.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from awacs import kms as kms_actions
from awacs import logs as logs_actions
from awacs import s3 as s3_actions
from awacs import sts as sts_actions
from troposphere import GetAtt, ImportValue, Output, Ref, Sub, Template, codebuild, codecommit, codepipeline, logs
from troposphere.iam import Policy, Role

from infra_templates import constructs, iam
from infra_templates.config import Environment, Project
from infra_templates.handover import capabilities
from infra_templates.naming import (
    deployer_role_name,
    infrastructure_pipeline_role_name,
    logical_id,
    stack_name,
)
from infra_templates.pipeline import Stack
from templates import delivery
from templates.contracts import Delivery
from templates.deployer import CHANGE_SET_NAME

LAYER = "delivery-infrastructure"
TEMPLATES = "Templates"  # the gate's output: output/, as `make test` wrote it
MAX_ACTIONS = 50  # per stage (CodePipeline quota)
MAX_STAGES = 50  # per pipeline (CodePipeline quota)
# Ubuntu, so `make templates` can install Graphviz with apt-get as the Makefile does.
BUILD_IMAGE = "aws/codebuild/standard:7.0"
NOT_DEPLOYED_METADATA = "InfraTemplatesNotDeployed"
BUILDSPEC = """version: 0.2
phases:
  install:
    runtime-versions:
      python: "3.11"
  build:
    commands:
      - make test
artifacts:
  base-directory: output
  files:
    - "**/*"
"""


@dataclass
class Deployment:
    """One environment of the pipeline: its manifest's stacks in order, prerequisites from other
    folders (``Stack.home``) included; the project's stacks are not in it."""

    environment: Environment
    stacks: list[Stack]


@dataclass
class Plan:
    """What the pipeline deploys, environment by environment, in ``delivery.stages`` order."""

    deployments: list[Deployment]
    environments: dict[str, Environment]
    skipped: dict[str, str] = field(default_factory=dict)  # stack -> why the pipeline leaves it alone

    def __post_init__(self) -> None:
        for deployment in self.deployments:
            env = deployment.environment
            self.skipped.setdefault(
                stack_name(env.project, env.name, "deployer"),
                "holds the roles the pipeline deploys with: a commit must not widen them; deploy it by hand",
            )
            for stack in deployment.stacks:
                given = sorted(n for n, source in stack.parameters.items() if source.get("from") == "deployer")
                if given:
                    self.skipped[stack.name] = (
                        f"takes {', '.join(given)} from the person deploying: CodePipeline's CloudFormation action "
                        "cannot keep a parameter's previous value, so it would roll a release back; deploy it "
                        "with its deploy.sh and the released value"
                    )

    def owner(self, deployment: Deployment, stack: Stack) -> Environment:
        """The environment whose folder holds the stack and whose roles deploy it."""
        return self.environments[stack.home or deployment.environment.name]

    def stages(self) -> list[tuple[Deployment, list[Stack]]]:
        """Per environment, the stacks the pipeline deploys there: each once, where first needed."""
        done: set[str] = set()
        result = []
        for deployment in self.deployments:
            stacks = [s for s in deployment.stacks if s.name not in done and s.name not in self.skipped]
            done.update(s.name for s in stacks)
            result.append((deployment, stacks))
        return result

    @property
    def regions(self) -> list[str]:
        return sorted({s.region for _, stacks in self.stages() for s in stacks})

    def deployers_in(self) -> dict[str, list[Environment]]:
        """Per region, the environments whose action role deploys a stack there."""
        found: dict[str, dict[str, Environment]] = {}
        for deployment, stacks in self.stages():
            for stack in stacks:
                owner = self.owner(deployment, stack)
                found.setdefault(stack.region, {})[owner.name] = owner
        return {region: list(envs.values()) for region, envs in sorted(found.items())}


def _label(project: Project, stack: str) -> str:
    """``shop-prod-edge-waf`` -> ``ProdEdgeWaf``: unique across the pipeline, as its actions need."""
    return logical_id(stack.removeprefix(f"{project.name}-"))


def build(project: Project, plan: Plan) -> Template:
    t = Template()
    t.set_version("2010-09-09")
    t.set_description(
        f"{stack_name(project.name, None, LAYER)}: the infrastructure's own pipeline: this repository, the gate, "
        "every environment's stacks through change sets (generated by infra-templates; do not edit)"
    )
    reasons: dict[str, list[str]] = {}
    for name, reason in sorted(plan.skipped.items()):
        reasons.setdefault(reason, []).append(name)
    t.set_metadata(
        {NOT_DEPLOYED_METADATA: [{"Reason": reason, "Stacks": names} for reason, names in sorted(reasons.items())]}
    )
    key_arn = ImportValue(Delivery.ARTIFACT_KEY_ARN.name(project.environments[0]))
    topic = ImportValue(Delivery.NOTIFICATION_TOPIC_ARN.name(project.environments[0]))
    connection = project.delivery.connection

    repository = None
    if connection is None:
        repository = t.add_resource(
            codecommit.Repository(
                "SourceRepository",
                RepositoryName=f"{project.name}-infrastructure",
                RepositoryDescription=f"These templates' own source; branch {project.delivery.branch} is deployed",
            )
        )
        constructs.protect(repository, None, always=True)
    log_group = t.add_resource(
        logs.LogGroup(
            "BuildLogGroup",
            LogGroupName=f"{project.name}-delivery-infrastructure-build",
            RetentionInDays=project.delivery.log_retention_days,
            KmsKeyId=key_arn,
        )
    )
    constructs.protect(log_group, None)
    build_role = t.add_resource(_build_role(project, log_group))
    gate = t.add_resource(
        codebuild.Project(
            "Gate",
            Description="Runs make test (lint, templates, cfn-lint, checkov, wiring, limits, shellcheck, tests) and "
            "hands output/ on to the deploy stages. No AWS credentials needed: it only builds and checks",
            ServiceRole=GetAtt(build_role, "Arn"),
            Source=codebuild.Source(Type="CODEPIPELINE", BuildSpec=BUILDSPEC),
            Artifacts=codebuild.Artifacts(Type="CODEPIPELINE"),
            EncryptionKey=key_arn,
            TimeoutInMinutes=60,
            Environment=codebuild.Environment(
                Type="LINUX_CONTAINER",
                ComputeType=project.delivery.build_compute,
                Image=BUILD_IMAGE,
                ImagePullCredentialsType="CODEBUILD",
            ),
            LogsConfig=codebuild.LogsConfig(
                CloudWatchLogs=codebuild.CloudWatchLogs(Status="ENABLED", GroupName=Ref(log_group)),
                S3Logs=codebuild.S3Logs(Status="DISABLED"),
            ),
        )
    )
    regions = [project.region, *(r for r in plan.regions if r != project.region)]
    pipeline_role = t.add_resource(
        _pipeline_role(project, plan, regions=regions, repository=repository, gate=gate, topic=topic)
    )
    stages = [
        delivery.source_stage(project, repository, connection.infrastructure if connection else None),
        codepipeline.Stages(
            Name="Gate",
            Actions=[
                codepipeline.Actions(
                    Name="MakeTest",
                    ActionTypeId=codepipeline.ActionTypeId(
                        Category="Build", Owner="AWS", Provider="CodeBuild", Version="1"
                    ),
                    Configuration={"ProjectName": Ref(gate)},
                    InputArtifacts=[codepipeline.InputArtifacts(Name=delivery.SOURCE)],
                    OutputArtifacts=[codepipeline.OutputArtifacts(Name=TEMPLATES)],
                    RunOrder=1,
                )
            ],
        ),
        *deploy_stages(project, plan, topic),
    ]
    if len(stages) > MAX_STAGES:
        raise ValueError(f"the infrastructure pipeline needs {len(stages)} stages; CodePipeline allows {MAX_STAGES}")
    pipeline = t.add_resource(
        codepipeline.Pipeline(
            "Pipeline",
            Name=f"{project.name}-infrastructure",
            PipelineType="V2",
            ExecutionMode="QUEUED",  # every commit in turn: none skips past an approval
            RoleArn=GetAtt(pipeline_role, "Arn"),
            ArtifactStores=delivery.artifact_stores(project, key_arn, regions),
            Stages=stages,
        )
    )
    if repository is not None:
        delivery.start_on_push(t, project, repository, pipeline)
    delivery.notify_failures(t, project, pipeline, topic)
    t.add_output(Output("PipelineName", Description="The infrastructure pipeline", Value=Ref(pipeline)))
    if repository is not None:
        t.add_output(
            Output("CloneUrlHttp", Description="Push this repository here", Value=GetAtt(repository, "CloneUrlHttp"))
        )
    return t


def deploy_stages(project: Project, plan: Plan, topic: object) -> list[codepipeline.Stages]:
    """Per environment: an approval stage if the settings ask, then its stacks, two actions each
    (create the change set, execute it) one after the other, in stages of at most 50 actions."""
    sources = {
        source["stack"]
        for deployment in plan.deployments
        for s in deployment.stacks
        for source in s.parameters.values()
        if "stack" in source
    }
    stages: list[codepipeline.Stages] = []
    for deployment, stacks in plan.stages():
        env = deployment.environment
        name = logical_id(env.name)
        if env.name in project.delivery.approval_before:
            stages.append(
                codepipeline.Stages(
                    Name=f"Approve{name}",
                    Actions=[
                        codepipeline.Actions(
                            Name=f"Approve{name}",
                            ActionTypeId=codepipeline.ActionTypeId(
                                Category="Approval", Owner="AWS", Provider="Manual", Version="1"
                            ),
                            Configuration={
                                "NotificationArn": topic,
                                "CustomData": f"Deploy commit {delivery.COMMIT_ID} of the infrastructure to "
                                f"{env.name}? Its change sets are created in the next stage.",
                            },
                            RunOrder=1,
                        )
                    ],
                )
            )
        actions: list[codepipeline.Actions] = []
        groups: list[list[codepipeline.Actions]] = []
        for stack in stacks:
            pair = _stack_actions(project, plan.owner(deployment, stack), stack, sources, len(actions) + 1)
            if len(actions) + len(pair) > MAX_ACTIONS:
                groups.append(actions)
                actions = []
                pair = _stack_actions(project, plan.owner(deployment, stack), stack, sources, 1)
            actions.extend(pair)
        if actions:
            groups.append(actions)
        for index, group in enumerate(groups, start=1):
            stages.append(codepipeline.Stages(Name=name if index == 1 else f"{name}{index}", Actions=group))
    return stages


def _role(owner: Environment, purpose: str) -> Sub:
    return Sub(
        "arn:${AWS::Partition}:iam::%s:role/%s"
        % (owner.account_id, deployer_role_name(owner.project, owner.name, purpose))
    )


def _stack_actions(
    project: Project, owner: Environment, stack: Stack, sources: set[str], run_order: int
) -> list[codepipeline.Actions]:
    """Create the stack's change set, then execute it; the second writes the stack's outputs to a
    file when a later stack reads them."""
    label = _label(project, stack.name)
    folder = stack.home or owner.name
    deploy = codepipeline.ActionTypeId(Category="Deploy", Owner="AWS", Provider="CloudFormation", Version="1")
    configuration: dict[str, Any] = {
        "ActionMode": "CHANGE_SET_REPLACE",
        "StackName": stack.name,
        "ChangeSetName": CHANGE_SET_NAME,
        "TemplatePath": f"{TEMPLATES}::{folder}/{stack.layer}.json",
        "RoleArn": _role(owner, "cfn"),
    }
    if needed := capabilities(stack.body):
        configuration["Capabilities"] = ",".join(needed)
    inputs = [TEMPLATES]
    overrides = {}
    for parameter, source in sorted(stack.parameters.items()):
        if "ssm" in source:
            continue  # CloudFormation resolves it: a service's released image tag
        if "stack" not in source:
            raise ValueError(f"{stack.name}: parameter {parameter} has no stack to read it from")
        artifact = f"{_label(project, source['stack'])}Outputs"
        overrides[parameter] = {"Fn::GetParam": [artifact, f"{source['stack']}.json", source["output"]]}
        if artifact not in inputs:
            inputs.append(artifact)
    if overrides:
        configuration["ParameterOverrides"] = json.dumps(overrides, sort_keys=True)
    execute: dict[str, Any] = {
        "ActionMode": "CHANGE_SET_EXECUTE",
        "StackName": stack.name,
        "ChangeSetName": CHANGE_SET_NAME,
    }
    outputs = []
    if stack.name in sources:
        execute["OutputFileName"] = f"{stack.name}.json"
        outputs = [codepipeline.OutputArtifacts(Name=f"{label}Outputs")]
    return [
        codepipeline.Actions(
            Name=f"{label}-ChangeSet",
            ActionTypeId=deploy,
            Configuration=configuration,
            InputArtifacts=[codepipeline.InputArtifacts(Name=name) for name in inputs],
            Region=stack.region,
            RoleArn=_role(owner, "action"),
            RunOrder=run_order,
        ),
        codepipeline.Actions(
            Name=f"{label}-Execute",
            ActionTypeId=deploy,
            Configuration=execute,
            OutputArtifacts=outputs,
            Region=stack.region,
            RoleArn=_role(owner, "action"),
            RunOrder=run_order + 1,
        ),
    ]


def _build_role(project: Project, log_group: logs.LogGroup) -> Role:
    """The gate: its logs and the pipeline's artifacts; no AWS API beyond those."""
    keys, by_alias = delivery.artifact_keys(project, [project.region])
    return iam.service_role(
        "GateRole",
        service="codebuild.amazonaws.com",
        description="CodeBuild runs the gate (make test) on the infrastructure's source",
        policy_name="gate",
        statements=[
            iam.allow(
                "WriteThisBuildsLogs",
                [logs_actions.CreateLogStream, logs_actions.PutLogEvents],
                [GetAtt(log_group, "Arn")],
            ),
            iam.allow(
                "ReadSourceAndWriteTemplates",
                [s3_actions.GetObject, s3_actions.GetObjectVersion, s3_actions.PutObject],
                [delivery.artifact_objects(project, project.region)],
            ),
            iam.allow(
                "UseTheArtifactKey",
                [kms_actions.Decrypt, kms_actions.DescribeKey, kms_actions.GenerateDataKey],
                keys,
                conditions=[by_alias],
            ),
        ],
        source_arn=iam.arn("codebuild", "project/*"),
    )


def _pipeline_role(
    project: Project,
    plan: Plan,
    *,
    regions: list[str],
    repository: codecommit.Repository | None,
    gate: codebuild.Project,
    topic: object,
) -> Role:
    """The pipeline: its source, the gate, the artifacts of every region it acts in, the approval
    topic, and assuming the deployer action role of each environment it deploys to."""
    owners = sorted(
        {plan.owner(d, s).name: plan.owner(d, s) for d, stacks in plan.stages() for s in stacks}.values(),
        key=lambda e: e.name,
    )
    statements = delivery.pipeline_statements(
        project, regions, build=(gate, "RunTheGate"), topic=topic, source=(repository, "ReadThisRepository")
    )
    if owners:
        statements.append(
            iam.allow(
                "DeployThroughEachEnvironmentsDeployerRole",
                [sts_actions.AssumeRole],
                [_role(env, "action") for env in owners],
            )
        )
    return Role(
        "PipelineRole",
        RoleName=infrastructure_pipeline_role_name(project.name),  # named: the deployer roles trust it by name
        Description="CodePipeline deploys the infrastructure",
        AssumeRolePolicyDocument=iam.service_trust("codepipeline.amazonaws.com"),
        Policies=[Policy(PolicyName="deploy", PolicyDocument=iam.document(*statements))],
    )
