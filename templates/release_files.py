"""The files a service's application repository needs for its release pipeline, written to
``output/delivery/<service>/``: ``buildspec.yml`` (CodeBuild), and per blue/green environment
``taskdef-<env>.json`` and ``appspec-<env>.yaml`` (CodeDeploy).

The task definition is not written by hand: it is the service stack's own ``TaskDefinition``
resource, translated to the ECS API's shape with every reference resolved from the settings (role
and log group names are fixed, see ``naming``). The image becomes CodeDeploy's ``<IMAGE1_NAME>``
placeholder, except in an environment that pulls from ECR's replica in its own region (a DR
environment): there it names the replica's repository, tagged ``<COMMIT_ID>``, which the build
replaces with the commit id (CodeDeploy's image file names the registry's region only). Values
another stack creates at deploy time (the database's endpoint and secret)
cannot be known here: they appear as ``@@<export name>@@``, to be replaced once after that stack is
deployed (the README says how); the database's name and port come from the settings.
"""

from __future__ import annotations

import re
from typing import Any

from infra_templates.config import Environment, Project
from infra_templates.naming import image_region, image_repository
from infra_templates.pipeline import Stack
from infra_templates.render import to_json, to_yaml
from templates.contracts import Data

IMAGE_PLACEHOLDER = "<IMAGE1_NAME>"
COMMIT_PLACEHOLDER = "<COMMIT_ID>"  # the image tag in a task definition the build completes
TASK_DEFINITION_PLACEHOLDER = "<TASK_DEFINITION>"
KEEP_KEYS = ("Options",)  # log driver options: their keys are the driver's, kept as written


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def delivery_files(project: Project, stacks: dict[str, list[Stack]]) -> dict[str, str]:
    """``{"<service>/<file>": text}`` for every service; ``stacks`` are each environment's stacks."""
    files: dict[str, str] = {}
    stages = [e for name in project.delivery.stages for e in project.environments if e.name == name]
    for service in project.services:
        blue_green = [e for e in stages if service in e.services and e.codedeploy(service)]
        for env in blue_green:
            body = next(s.body for s in stacks[env.name] if s.layer == f"svc-{service}")
            files[f"{service}/taskdef-{env.name}.json"] = to_json(task_definition(env, body))
            files[f"{service}/appspec-{env.name}.yaml"] = to_yaml(appspec(body))
        runs = [e for e in stages if service in e.services]
        replicas = {e.name: replica_repository(e, service) for e in runs if pulls_replica(e)}
        files[f"{service}/buildspec.yml"] = to_yaml(
            buildspec(project, service, [e.name for e in blue_green], replicas=replicas)
        )
        files[f"{service}/README.md"] = _readme(project, service, [e.name for e in blue_green], replicas)
    return files


def pulls_replica(env: Environment) -> bool:
    """Whether ``env`` pulls its images from ECR's replica in its own region, not the registry's."""
    return image_region(env) != env.registry.region


def replica_repository(env: Environment, service: str) -> str:
    """The service's repository in the region ``env`` pulls from, as a URI without a tag."""
    region = image_region(env)
    return image_repository(env.registry.account_id, region, env.project, service, _url_suffix(region))


def task_definition(env: Environment, body: dict[str, Any]) -> dict[str, Any]:
    """The service stack's task definition in the shape ``aws ecs register-task-definition`` takes.

    Its image is CodeDeploy's placeholder, which the release fills from ``imageDetail.json`` (the
    registry's region); in an environment that pulls from a replica it stays the stack's own image,
    with the tag ``<COMMIT_ID>`` for the build to replace.
    """
    resources = body["Resources"]
    properties = {k: v for k, v in resources["TaskDefinition"]["Properties"].items() if k != "Tags"}
    resolved = _api_shape(_resolve(env, resources, properties))
    if not pulls_replica(env):
        for container in resolved["containerDefinitions"]:
            container["image"] = IMAGE_PLACEHOLDER
    return dict(resolved)


def appspec(body: dict[str, Any]) -> dict[str, Any]:
    """The AppSpec CodeDeploy releases with: the container and port the target groups send to."""
    service = body["Resources"]["Service"]["Properties"]
    (load_balancer,) = service["LoadBalancers"]
    properties: dict[str, Any] = {
        "TaskDefinition": TASK_DEFINITION_PLACEHOLDER,
        "LoadBalancerInfo": {
            "ContainerName": load_balancer["ContainerName"],
            "ContainerPort": load_balancer["ContainerPort"],
        },
    }
    if "CapacityProviderStrategy" in service:
        properties["CapacityProviderStrategy"] = service["CapacityProviderStrategy"]
    return {"version": 0.0, "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": properties}}]}


def buildspec(
    project: Project, service: str, blue_green: list[str], replicas: dict[str, str] | None = None
) -> dict[str, Any]:
    """Test, build, push the image tagged with the commit id (once: tags are immutable), and export
    the tag as ``IMAGE_TAG`` (the build action's namespace ``BuildVariables``), which the release
    actions write to each environment's image tag parameter. ``blue_green`` names the environments
    CodeDeploy releases to: for them it also writes imageDetail.json and ships their task
    definitions and appspecs.

    An environment of ``replicas`` (name -> its replica repository) released by CodeDeploy pulls
    from ECR's replica in its own region: its task definition gets the commit id as its tag. (One
    released through CloudFormation needs nothing: its stack names its own region's image.)
    """
    image = "$REPOSITORY_URI:$COMMIT_ID"
    replicas = replicas or {}
    files = ["imageDetail.json"]
    files += [f for env in blue_green for f in (f"taskdef-{env}.json", f"appspec-{env}.yaml")]
    regional = [
        f'sed -i "s#{COMMIT_PLACEHOLDER}#$COMMIT_ID#g" taskdef-{env}.json'
        for env in sorted(replicas)
        if env in blue_green
    ]
    return {
        "version": 0.2,
        "env": {"shell": "bash", "exported-variables": ["IMAGE_TAG"]},
        "phases": {
            "pre_build": {
                "commands": [
                    'test -n "$COMMIT_ID"',
                    'export IMAGE_TAG="$COMMIT_ID"',
                    'aws ecr get-login-password --region "$AWS_REGION" | docker login --username AWS '
                    '--password-stdin "${REPOSITORY_URI%%/*}"',
                ]
            },
            "build": {"commands": [project.delivery.test_command, f'docker build --tag "{image}" .']},
            "post_build": {
                "commands": [
                    'test "$CODEBUILD_BUILD_SUCCEEDING" = 1',
                    # A retried release finds its image pushed already: tags are immutable.
                    'aws ecr describe-images --repository-name "${REPOSITORY_URI#*/}" '
                    f'--image-ids imageTag="$COMMIT_ID" >/dev/null 2>&1 || docker push "{image}"',
                    f'printf \'{{"ImageURI":"%s"}}\' "{image}" > imageDetail.json',
                    *regional,
                ]
            },
        },
        "artifacts": {"files": files},
    }


def _resolve(env: Environment, resources: dict[str, Any], node: Any) -> Any:
    """Replace CloudFormation references with the values they take in ``env``."""
    if isinstance(node, list):
        return [_resolve(env, resources, item) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1 and next(iter(node)) in INTRINSICS:
        (function, argument), *_ = node.items()
        return _intrinsic(env, resources, function, argument)
    return {key: _resolve(env, resources, value) for key, value in node.items()}


INTRINSICS = ("Ref", "Fn::GetAtt", "Fn::ImportValue", "Fn::Sub")


def _settled(env: Environment) -> dict[str, str]:
    """Exports whose value the settings decide: the database's name (exported as written) and port
    (the cluster's ``Port`` is set from the settings). Only the endpoint and the secret, which AWS
    names when it creates them, stay placeholders."""
    return {Data.DATABASE_NAME.name(env): env.database.name, Data.PORT.name(env): str(env.database.port)}


def _intrinsic(env: Environment, resources: dict[str, Any], function: str, argument: Any) -> str:
    if function == "Ref":
        return _ref(env, resources, argument)
    if function == "Fn::ImportValue":
        return _settled(env).get(argument, f"@@{argument}@@")
    if function == "Fn::Sub":
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {k: _resolve(env, resources, v) for k, v in variables.items()}
        return re.sub(r"\$\{([^}]+)\}", lambda m: str(values.get(m[1]) or _ref(env, resources, m[1])), text)
    logical, attribute = argument
    if attribute != "Arn" or resources[logical]["Type"] != "AWS::IAM::Role":
        raise ValueError(f"cannot resolve GetAtt {logical}.{attribute} for a task definition")
    name = resources[logical]["Properties"]["RoleName"]
    return f"arn:{partition(env.region)}:iam::{env.account_id}:role/{name}"


def _url_suffix(region: str) -> str:
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


def _ref(env: Environment, resources: dict[str, Any], name: str) -> str:
    pseudo = {
        "AWS::Region": env.region,
        "AWS::AccountId": env.account_id,
        "AWS::Partition": partition(env.region),
        "AWS::URLSuffix": _url_suffix(env.region),
    }
    if name in pseudo:
        return pseudo[name]
    if name in resources and resources[name]["Type"] == "AWS::Logs::LogGroup":
        return str(resources[name]["Properties"]["LogGroupName"])
    if name == "ImageTag":
        return COMMIT_PLACEHOLDER
    raise ValueError(f"cannot resolve Ref {name} for a task definition")


def _api_shape(node: Any) -> Any:
    """CloudFormation's PascalCase property names to the ECS API's camelCase."""
    if isinstance(node, list):
        return [_api_shape(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {key[0].lower() + key[1:]: value if key in KEEP_KEYS else _api_shape(value) for key, value in node.items()}


def _readme(project: Project, service: str, blue_green: list[str], replicas: dict[str, str]) -> str:
    files = "".join(f"- `taskdef-{e}.json`, `appspec-{e}.yaml`: what CodeDeploy releases to {e}\n" for e in blue_green)
    for e, uri in sorted(replicas.items()):
        if e in blue_green:
            files += f"- {e} pulls from ECR's replica of the image in its own region, `{uri}`: the build writes\n"
            files += f"  the commit id over `{COMMIT_PLACEHOLDER}` in `taskdef-{e}.json`\n"
    placeholders = ""
    if blue_green:
        placeholders = """
A task definition names the service's roles, log group and secrets exactly as its stack creates
them. Where it says `@@<export>@@` (a database value, known only once the data stack exists),
replace it once with the export's value:
`aws cloudformation list-exports --query "Exports[?Name=='<export>'].Value" --output text`
in the environment's account and region. After changing the environment files, regenerate and copy
the files again.
"""
    return f"""# Release files of {service}

Generated by infra-templates from the environment files; do not edit them here, regenerate.

Copy these files to the root of the {service} repository, next to its `Dockerfile`, and commit
them on `{project.delivery.branch}`: the pipeline `{project.name}-{service}` builds and releases
every commit of that branch.

- `buildspec.yml`: CodeBuild runs `{project.delivery.test_command}`, builds the image, pushes it to
  `{project.name}/{service}` tagged with the commit id and exports the tag (`IMAGE_TAG`); each
  environment's release writes it to `/{project.name}/<env>/{service}/image-tag` and updates the
  service's stack through CloudFormation
{files}{placeholders}"""
