"""Deploy guide and script of one output folder: ``DEPLOY.md`` and ``deploy.sh`` in ``output/<env>/``
(and in ``output/project/`` for the project-wide stacks), with the day-2 scripts of ``day2.py``
beside them (``status.sh``, ``logs.sh``, ``destroy.sh``).

Both are derived from the folder's manifest (stacks in deploy order, regions, template files) and
from the templates themselves, so a new layer needs nothing here. A manifest may list stacks whose
templates live in another folder. The project-wide stacks every environment builds on (``project/``,
possibly in another account) are named as deployed first, from that folder. The stacks of a DR
pair's other environment (same account, by rule) are deployed here too, from their own folder's
templates and with that environment's tags, where the manifest lists them: a primary and its DR
environment need some of each other's stacks in between their own, so neither folder could be
deployed whole before the other. Deploying an unchanged stack again changes nothing. Per stack:

- capabilities: ``CAPABILITY_NAMED_IAM`` when an IAM role, user, group, managed policy or instance
  profile sets its name, else ``CAPABILITY_IAM`` when there is any ``AWS::IAM::*`` resource;
  ``CAPABILITY_AUTO_EXPAND`` too when the template has a ``Transform``;
- termination protection: on for a stack that holds a resource of a stateful type or one whose
  DeletionPolicy keeps it (Retain, Snapshot);
- parameters without a default: read by the script from an environment variable named after the
  parameter (``ImageTag`` -> ``IMAGE_TAG``), all checked before the first stack is touched;
- a service's image tag read from SSM (``/<project>/<env>/<service>/image-tag``): on a first deployment
  the parameter does not exist, so the script creates it, right before the stack, from
  ``IMAGE_TAG_<SERVICE>`` (or ``IMAGE_TAG``) once ECR holds that image; it never overwrites one
  (``put-parameter`` without ``--overwrite``: that would roll a release back);
- pre-flight checks before any stack: no stack in a status CloudFormation updates nothing in
  (``BLOCKING_STATUSES``; CloudFormation User Guide, "Stack status codes": ``ROLLBACK_COMPLETE`` can
  only be deleted, ``UPDATE_ROLLBACK_FAILED`` needs its rollback continued, ``DELETE_FAILED`` its
  delete finished, an operation in progress its end; the script prints the command for each), the
  referenced Secrets Manager secrets, SSM parameters and ACM certificates exist;
- a stack whose update ``make diff`` blocks against what was deployed (``blocked``: a stateful resource
  replaced or deleted, or a change AWS refuses) stops the script before any stack unless
  ``ALLOW_REPLACE`` names it; after each stack it deploys, the script records the stack's JSON template
  in ``deployed/<folder>/<region>/<stack>.json`` (beside ``output/``, which every build rewrites), the
  baseline of ``make diff`` and of those verdicts.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra_templates import cost, day2
from infra_templates.render import made, once
from infra_templates.stateful import kept_resources, stateful_resources

GUIDE = "DEPLOY.md"
SHARED_FOLDER = "project"  # the project-wide stacks' folder: deployed by its own script
SCRIPT = "deploy.sh"
FILES = (GUIDE, SCRIPT, *day2.SCRIPTS)  # the day-2 scripts (status, logs, destroy): day2.py
# The stack statuses in which CloudFormation updates nothing until someone acts (CloudFormation User
# Guide, "Stack status codes"): deploy.sh's pre-flight names each stack of its folder in one.
BLOCKING_STATUSES = (
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_FAILED",
    "DELETE_FAILED",
    "CREATE_IN_PROGRESS",
    "ROLLBACK_IN_PROGRESS",
    "DELETE_IN_PROGRESS",
    "UPDATE_IN_PROGRESS",
    "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
    "UPDATE_ROLLBACK_IN_PROGRESS",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
    "IMPORT_IN_PROGRESS",
    "IMPORT_ROLLBACK_IN_PROGRESS",
)

# The property by which each IAM resource type sets its own name (CAPABILITY_NAMED_IAM).
IAM_NAME_PROPERTIES = {
    "AWS::IAM::Group": "GroupName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::User": "UserName",
}
# A Markdown code block's line saying its commands run with another account's credentials than the
# folder's (tests/test_aws_commands.py holds every other command to the folder's account).
CREDENTIALS_MARK = "# with the credentials of account"
# Variables a parameter must not be read from: the shell's, the locale's and the AWS CLI's own.
RESERVED_VARIABLES = {"HOME", "IFS", "OLDPWD", "PATH", "PWD", "SHELL", "TERM", "TMPDIR", "USER"}
RESERVED_PREFIXES = ("AWS_", "BASH", "LC_")


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    description: str
    default: str | None  # as text; None: the value must be given at deploy time
    no_echo: bool
    source: tuple[str, str, str] | None = None  # (stack, output, region) it is read from, if any

    @property
    def variable(self) -> str:
        return variable_name(self.name)


@dataclass(frozen=True)
class Output:
    key: str
    description: str
    export: str | None


@dataclass(frozen=True)
class ImageTag:
    """A service stack's image tag kept in SSM: the parameter, the variable a first tag comes from,
    and the ECR image it names (``None`` where the template's image is not an ECR URI)."""

    parameter: str  # /shop/prod/api/image-tag
    service: str  # api
    registry: tuple[str, str, str] | None  # (account, region, repository)

    @property
    def variable(self) -> str:
        """``IMAGE_TAG_API``: the tag of this service only (``IMAGE_TAG`` gives every service's)."""
        return "IMAGE_TAG_" + re.sub(r"[^A-Za-z0-9]", "_", self.service).upper()

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9]", "_", self.service).lower()


@dataclass(frozen=True)
class SecretRef:
    """A secret or SSM parameter a container of the stack reads (ECS Developer Guide, "Pass sensitive
    data to an Amazon ECS container": ``valueFrom``), which the deployer creates in the account."""

    kind: str  # "secretsmanager" | "ssm"
    name: str  # the secret's ARN (complete name, no JSON key) | the parameter's name
    variable: str  # the container's environment variable
    key: str | None  # the JSON key of the secret's value it reads, if any
    container: str  # the container that reads it

    @property
    def region(self) -> str:
        return self.name.split(":")[3] if self.kind == "secretsmanager" else ""

    @property
    def complete_name(self) -> str:
        """``shop/api/payment-AbC123``: the secret's name with the 6 characters Secrets Manager added."""
        return self.name.split(":secret:", 1)[-1]

    @property
    def base_name(self) -> str:
        """``shop/api/payment``: the name to create; Secrets Manager adds "-" and 6 random characters
        to the ARN (Secrets Manager API Reference, CreateSecret: ARN), so no one chooses the suffix."""
        return re.sub(r"-[A-Za-z0-9]{6}$", "", self.complete_name) if self.kind == "secretsmanager" else self.name


@dataclass(frozen=True)
class StackPlan:
    """How to deploy one stack: everything DEPLOY.md and deploy.sh say about it."""

    order: int  # among the stacks this folder deploys
    name: str
    region: str
    template: str  # the YAML file, relative to this folder
    json_template: str
    upload_bucket: str | None  # deployed through this S3 bucket (a template beyond 51,200 bytes)
    elsewhere: str | None  # the folder its templates are in (relative to this one), if not this one
    depends_on: tuple[str, ...]
    capabilities: tuple[str, ...]
    iam: tuple[str, ...]  # logical IDs of the IAM resources behind the capabilities
    holds: tuple[str, ...]  # why termination protection: "LogsKey (AWS::KMS::Key)"
    parameters: tuple[Parameter, ...]
    outputs: tuple[Output, ...]
    partner: str | None = None  # the DR pair's other environment it belongs to, if deployed from here
    image_tag: ImageTag | None = None  # the SSM parameter its image tag is read from, if any
    secrets: tuple[SecretRef, ...] = ()  # the secrets and SSM parameters its containers read
    certificates: tuple[str, ...] = ()  # ACM certificate ARNs it names
    origin_names: tuple[str, ...] = ()  # host names its CloudFront distributions reach custom origins by
    records: tuple[str, ...] = ()  # the DNS names its Route 53 records answer

    @property
    def deployed_here(self) -> bool:
        return self.elsewhere is None or self.partner is not None

    @property
    def protect(self) -> bool:
        return bool(self.holds)

    @property
    def required(self) -> tuple[Parameter, ...]:
        """What the deployer must give: no default and no other stack's output to read it from."""
        return tuple(p for p in self.parameters if p.default is None and p.source is None)

    @property
    def sourced(self) -> tuple[Parameter, ...]:
        """What the script reads from another stack's output (in another region, out of ImportValue's reach)."""
        return tuple(p for p in self.parameters if p.source is not None)


# --- reading the templates --------------------------------------------------------------------


def capabilities(body: Mapping[str, Any]) -> tuple[str, ...]:
    """The capabilities CloudFormation asks to acknowledge before it creates the template's stack."""
    resources = body.get("Resources", {}).values()
    iam = [r for r in resources if str(r.get("Type", "")).startswith("AWS::IAM::")]
    named = [r for r in iam if IAM_NAME_PROPERTIES.get(r["Type"]) in r.get("Properties", {})]
    found = ["CAPABILITY_NAMED_IAM"] if named else ["CAPABILITY_IAM"] if iam else []
    if "Transform" in body:
        found.append("CAPABILITY_AUTO_EXPAND")
    return tuple(found)


def termination_protection_reasons(body: Mapping[str, Any]) -> tuple[str, ...]:
    """What in the stack would be lost with it: stateful resources and those asking to be kept."""
    reasons = {name: f"{name} ({type_})" for name, type_ in stateful_resources(body).items()}
    for name, policy in kept_resources(body).items():
        reasons.setdefault(name, f"{name} (DeletionPolicy {policy})")
    return tuple(reasons.values())


def variable_name(parameter: str) -> str:
    """The environment variable a parameter is read from: ``ImageTag`` -> ``IMAGE_TAG``."""
    words = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", parameter)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", words).upper()


def _parameters(body: Mapping[str, Any], sources: Mapping[str, tuple[str, str, str]]) -> tuple[Parameter, ...]:
    found = []
    for name, spec in body.get("Parameters", {}).items():
        default = spec.get("Default")
        if isinstance(default, list):
            default = ",".join(str(d) for d in default)
        found.append(
            Parameter(
                name=name,
                type=str(spec.get("Type", "String")),
                description=str(spec.get("Description", "")),
                default=None if default is None else str(default),
                no_echo=str(spec.get("NoEcho", "false")).lower() == "true",
                source=sources.get(name),
            )
        )
    return tuple(found)


def _outputs(body: Mapping[str, Any]) -> tuple[Output, ...]:
    return tuple(
        Output(key, str(spec.get("Description", "")), spec.get("Export", {}).get("Name"))
        for key, spec in body.get("Outputs", {}).items()
    )


_PSEUDO = {"${AWS::Partition}": "aws", "${AWS::URLSuffix}": "amazonaws.com"}
_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/(?P<repo>[^:]+):\$\{ImageTag\}$"
)
_SECRET_ARN = re.compile(r"^(?P<arn>arn:aws:secretsmanager:[a-z0-9-]+:\d{12}:secret:[^:]+)")
_PARAMETER_ARN = re.compile(r"^arn:aws:ssm:[a-z0-9-]+:\d{12}:parameter(?P<name>/\S+)$")
_CERTIFICATE_ARN = re.compile(r"^arn:aws:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$")


def _literal(value: Any, region: str, account: str) -> str | None:
    """A string or a ``Fn::Sub`` of pseudo parameters only, resolved; else ``None``."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        value = value["Fn::Sub"]
    if not isinstance(value, str):
        return None
    for name, resolved in {**_PSEUDO, "${AWS::Region}": region, "${AWS::AccountId}": account}.items():
        value = value.replace(name, resolved)
    return value


def _strings(node: Any, containing: str = "") -> list[Any]:
    """Every value under ``node`` that may be a literal: strings and ``Fn::Sub`` of one string;
    with ``containing``, only those whose text holds it."""
    found: list[Any] = []
    _collect_strings(node, containing, found)
    return found


def _collect_strings(node: Any, containing: str, found: list[Any]) -> None:
    if isinstance(node, str):
        if containing in node:
            found.append(node)
    elif isinstance(node, dict):
        if len(node) == 1 and "Fn::Sub" in node:
            text = node["Fn::Sub"]
            if not isinstance(text, str) or containing in text:
                found.append(node)
            return
        for child in node.values():
            _collect_strings(child, containing, found)
    elif isinstance(node, list):
        for child in node:
            _collect_strings(child, containing, found)


def _image_tag(body: Mapping[str, Any], region: str, account: str) -> ImageTag | None:
    spec = body.get("Parameters", {}).get("ImageTag")
    if not spec or not str(spec.get("Type", "")).startswith("AWS::SSM::Parameter::Value<"):
        return None
    parameter = str(spec.get("Default", ""))
    if not parameter.startswith("/"):
        return None
    registry = None
    for resource in body.get("Resources", {}).values():
        if resource.get("Type") != "AWS::ECS::TaskDefinition":
            continue
        for container in resource.get("Properties", {}).get("ContainerDefinitions", []):
            image = _ECR_IMAGE.match(_literal(container.get("Image"), region, account) or "")
            if image and registry is None:
                registry = (image["account"], image["region"], image["repo"])
    return ImageTag(parameter, parameter.rstrip("/").split("/")[-2], registry)


def _secrets(body: Mapping[str, Any], region: str, account: str) -> tuple[SecretRef, ...]:
    """The Secrets Manager secrets and SSM parameters the containers name by literal ARN (ECS
    Developer Guide, "Pass sensitive data to an Amazon ECS container": ``valueFrom``, a secret's ARN
    then ``:json-key:version-stage:version-id``)."""
    found: dict[SecretRef, None] = {}
    for resource in body.get("Resources", {}).values():
        if resource.get("Type") != "AWS::ECS::TaskDefinition":
            continue
        for container in resource.get("Properties", {}).get("ContainerDefinitions", []):
            for secret in container.get("Secrets", []):
                arn = _literal(secret.get("ValueFrom"), region, account) or ""
                variable, name = str(secret.get("Name", "")), str(container.get("Name", ""))
                if match := _SECRET_ARN.match(arn):
                    key = (arn[len(match["arn"]) :].split(":")[1:2] or [""])[0] or None
                    found[SecretRef("secretsmanager", match["arn"], variable, key, name)] = None
                elif match := _PARAMETER_ARN.match(arn):
                    found[SecretRef("ssm", match["name"], variable, None, name)] = None
    return tuple(found)


def _certificates(body: Mapping[str, Any], region: str, account: str) -> tuple[str, ...]:
    """The ACM certificate ARNs the template's resources name (literals, or a ``Fn::Sub`` of pseudo
    parameters only)."""
    return _certificates_in(_certificate_texts(body), region, account)


def _certificate_texts(body: Mapping[str, Any]) -> list[Any]:
    # Only a text holding "certificate/" can resolve to a certificate's ARN: the pseudo parameters
    # _literal substitutes (a partition, a domain suffix, a region, an account) never form it, so
    # the others (nearly every string of a template) need not be resolved. Where the build has made
    # the template's JSON text, a text without it has no such string (JSON leaves "/" unescaped).
    text = made(body, "json")
    if text is not None and "certificate/" not in text:
        return []
    return _strings(body.get("Resources", {}), "certificate/")


def _certificates_in(texts: Sequence[Any], region: str, account: str) -> tuple[str, ...]:
    found = (_literal(v, region, account) for v in texts)
    return tuple(dict.fromkeys(v for v in found if v and _CERTIFICATE_ARN.match(v)))


def _origin_names(body: Mapping[str, Any]) -> tuple[str, ...]:
    """The host names (literals) a distribution of ``body`` reaches its custom origins by."""
    return tuple(
        dict.fromkeys(
            origin["DomainName"]
            for r in body.get("Resources", {}).values()
            if r["Type"] == "AWS::CloudFront::Distribution"
            for origin in r["Properties"]["DistributionConfig"].get("Origins", [])
            if "CustomOriginConfig" in origin and isinstance(origin.get("DomainName"), str)
        )
    )


def _origin_name_steps(own: Sequence[StackPlan]) -> list[str]:
    """What CloudFront's custom origin names need outside the templates: a DNS record of the load
    balancer (unless a stack here holds it) and the load balancer's certificate covering the name,
    which CloudFront checks (CloudFront Developer Guide, "HTTP 502 status code (Bad Gateway)": the
    origin's certificate must match the origin domain or the Host header CloudFront sends)."""
    recorded = {(name, s.name) for s in own for name in s.records}
    balancer = next((s.name for s in own if any(o.key == "LoadBalancerDnsName" for o in s.outputs)), None)
    steps = []
    for stack in (s for s in own if s.elsewhere is None):  # a DR partner's stack: in its own folder's guide
        for name in stack.origin_names:
            holder = next((h for n, h in recorded if n == name), None)
            record = (
                f"`{holder}` holds its DNS record"
                if holder
                else "create its DNS record once the load balancer is up: an alias (Route 53) or CNAME of the "
                + (
                    f"load balancer's DNS name, output `LoadBalancerDnsName` of `{balancer}`"
                    if balancer
                    else "load balancer's DNS name"
                )
            )
            steps.append(
                f"- `{name}` is the name `{stack.name}`'s CloudFront distribution reaches the load balancer by: "
                f"{record}; the load balancer's certificate (`platform.certificate_arn`) must cover it, since "
                "CloudFront checks the certificate against that name (502 Bad Gateway otherwise)."
            )
    return steps


def _source_region(given: Mapping[str, str], region_of: Mapping[str, str], reader: str) -> str:
    """Where the stack a parameter is read from lives: as the template recorded it, else as the
    manifest lists it. Never a guess: a read in the wrong region stops the script half-way."""
    region = given.get("region") or region_of.get(given["stack"])
    if region is None:
        raise ValueError(
            f"{reader} reads output {given['output']} of {given['stack']}, which the manifest does not list "
            "and whose region the template does not record (LayerContext.parameter_from(region=...))"
        )
    return region


def plan(manifest: Mapping[str, Any], templates: Mapping[str, Mapping[str, Any]], folder: str) -> list[StackPlan]:
    """The stacks of the manifest in its order; ``templates`` maps each stack name to its template.

    ``folder`` is the name of the manifest's folder: a stack whose template resolves outside it is
    deployed from the folder that holds it (``elsewhere``), not from this one.
    """
    plans = []
    position = 0
    region_of = {stack["name"]: stack["region"] for stack in manifest["stacks"]}
    for stack in manifest["stacks"]:
        sources = {
            name: (given["stack"], given["output"], _source_region(given, region_of, stack["name"]))
            for name, given in stack.get("parameters", {}).items()
            if "stack" in given
        }
        body = templates[stack["name"]]
        where = posixpath.normpath(posixpath.join(folder, stack["templates"]["yaml"]))
        home = posixpath.dirname(where)
        own = home == folder
        partner = None if own or posixpath.basename(home) == SHARED_FOLDER else posixpath.basename(home)
        here = own or partner is not None
        position += here
        plans.append(
            StackPlan(
                order=position if here else 0,
                name=stack["name"],
                region=stack["region"],
                template=_relative(where, folder),
                json_template=_relative(posixpath.join(folder, stack["templates"]["json"]), folder),
                upload_bucket=stack.get("upload_bucket"),
                elsewhere=None if own else _relative(home, folder),
                depends_on=tuple(stack["depends_on"]),
                parameters=_parameters(body, sources),
                partner=partner,
                **_read(body, stack["region"], str(manifest["account_id"])),
            )
        )
    _check_variables([p for p in plans if p.deployed_here])
    return plans


def _read(body: Mapping[str, Any], region: str, account: str) -> dict[str, Any]:
    """What a plan says of a stack that its template, region and account decide. What the template
    alone decides is read once for each template while the build keeps what it derives from them
    (``render.once``: the project's stacks are in every folder's manifest, a DR pair's in both)."""
    read: dict[str, Any] = once(body, "handover", _read_template)
    return {
        **{key: value for key, value in read.items() if key != "certificate_texts"},
        "image_tag": _image_tag(body, region, account),
        "secrets": _secrets(body, region, account),
        "certificates": _certificates_in(read["certificate_texts"], region, account),
    }


def _read_template(body: Mapping[str, Any]) -> dict[str, Any]:
    resources = body.get("Resources", {})
    return {
        "capabilities": capabilities(body),
        "iam": tuple(k for k, r in resources.items() if r["Type"].startswith("AWS::IAM::")),
        "holds": termination_protection_reasons(body),
        "outputs": _outputs(body),
        "origin_names": _origin_names(body),
        "records": tuple(
            str(r["Properties"]["Name"]).rstrip(".")
            for r in resources.values()
            if r["Type"] == "AWS::Route53::RecordSet"
        ),
        "certificate_texts": _certificate_texts(body),
    }


def _relative(path: str, start: str) -> str:
    """``posixpath.relpath(path, start)`` of two relative paths, without the two calls for the
    current folder relpath makes (its ``abspath``), where neither path leads above it: then the
    folder both are joined to does not change the answer, so "/" stands for it."""
    if (
        path
        and start
        and not any(
            p.startswith("/") or p == ".." or p.startswith("../") for p in map(posixpath.normpath, (path, start))
        )
    ):
        return posixpath.relpath("/" + path, "/" + start)
    return posixpath.relpath(path, start)


def _check_variables(plans: Sequence[StackPlan]) -> None:
    """Two parameter names must not share a variable, nor take one the shell or the AWS CLI reads."""
    owner: dict[str, str] = {}
    for stack in plans:
        for parameter in stack.required:
            variable = parameter.variable
            if variable in RESERVED_VARIABLES or variable.startswith(RESERVED_PREFIXES):
                raise ValueError(f"{stack.name}: parameter {parameter.name} would be read from ${variable}; rename it")
            if owner.setdefault(variable, parameter.name) != parameter.name:
                raise ValueError(
                    f"{stack.name}: parameters {owner[variable]} and {parameter.name} would both be read from "
                    f"${variable}; rename one"
                )


# The output of the stack that holds the load balancer: its DNS name and its canonical hosted zone (the
# AliasTarget of a Route 53 alias record to it: Route 53 API Reference, "AliasTarget").
LOAD_BALANCER_DNS_OUTPUT = "LoadBalancerDnsName"
LOAD_BALANCER_ZONE_OUTPUT = "LoadBalancerHostedZoneId"


@dataclass(frozen=True)
class OriginRecord:
    """A DNS name CloudFront sends requests to (a custom origin's ``DomainName``, ``edge.origin_domain``)
    and what the deployer must do for it: a record to the load balancer, a certificate that covers it."""

    name: str  # origin.shop.example.com
    stack: str  # the stack whose outputs give the load balancer's DNS name and hosted zone
    region: str
    certificate: str | None  # the load balancer's HTTPS certificate, which must cover ``name``
    managed_by: str | None = None  # a stack of this folder that holds a Route 53 record of ``name``
    hosted_zone: tuple[str, str] | None = None  # (zone id, the setting that gives it), where the settings have one


def origin_records(
    plans: Sequence[StackPlan], templates: Mapping[str, Mapping[str, Any]], hosted_zone: tuple[str, str] | None
) -> tuple[OriginRecord, ...]:
    """Each custom origin of a CloudFront distribution this folder deploys, reached over HTTPS by a
    literal DNS name, with the stack that outputs the load balancer's DNS name (the one load balancer
    of the folder today) and the Route 53 record of that name a stack of this folder holds, if any."""
    own = [p for p in plans if p.deployed_here]
    balancer = next((p for p in own if any(o.key == LOAD_BALANCER_DNS_OUTPUT for o in p.outputs)), None)
    if balancer is None:
        return ()
    names: dict[str, None] = {}
    records: dict[str, str] = {}
    for stack in own:
        for resource in templates[stack.name].get("Resources", {}).values():
            props = resource.get("Properties", {})
            # A DR partner's distribution is its own folder's: its origin is the partner's load balancer.
            if resource.get("Type") == "AWS::CloudFront::Distribution" and stack.elsewhere is None:
                for origin in props.get("DistributionConfig", {}).get("Origins", []):
                    if "CustomOriginConfig" in origin and isinstance(origin.get("DomainName"), str):
                        names[origin["DomainName"]] = None
            elif resource.get("Type") == "AWS::Route53::RecordSet" and isinstance(props.get("Name"), str):
                records.setdefault(props["Name"].rstrip("."), stack.name)
    certificate = balancer.certificates[0] if balancer.certificates else None
    return tuple(
        OriginRecord(name, balancer.name, balancer.region, certificate, records.get(name), hosted_zone)
        for name in names
    )


def origin_dns_section(record: OriginRecord) -> list[str]:
    """DEPLOY.md's step for one origin name, right after the stack that holds the load balancer.

    The certificate rule: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/
    using-https-cloudfront-to-custom-origin.html and cnames-and-https-requirements.html ("Domain names
    in the CloudFront distribution and in the certificate"); the alias target: Route 53 API Reference,
    "AliasTarget" (an ELB load balancer: its DNS name and its canonical hosted zone ID)."""
    q = shlex.quote
    certificate = f": `{record.certificate}`" if record.certificate else ""
    out = [
        f"### The origin name `{record.name}`",
        "",
        f"CloudFront reaches the load balancer by the name `{record.name}` (`edge.origin_domain`), over HTTPS only:",
        "",
        f"- the load balancer's certificate (`platform.certificate_arn`{certificate}) must cover `{record.name}` "
        "(as its name or a wildcard): CloudFront checks the origin's certificate against the origin's domain "
        "name and fails the request otherwise (CloudFront Developer Guide, 'Require HTTPS for communication "
        "between CloudFront and your custom origin' and 'Requirements for using SSL/TLS certificates with "
        "CloudFront': domain names);",
    ]
    if record.managed_by:
        out += [
            f"- its DNS record is managed by the stack `{record.managed_by}` (Route 53 failover records, `dr.dns`): "
            "nothing to create by hand; do not create another record of that name in that hosted zone.",
        ]
        return out
    out.append(
        f"- `{record.name}` must resolve to the load balancer: no stack creates that record. Create it once "
        f"`{record.stack}` is up, as an alias (Route 53) or a CNAME (any DNS provider) to the load balancer's DNS "
        "name, which the stack's outputs give:"
    )
    read = (
        f"aws cloudformation describe-stacks --stack-name {q(record.stack)} --region {q(record.region)} "
        "--query \"Stacks[0].Outputs[?OutputKey=='{output}'].OutputValue\" --output text"
    )
    out += [
        "",
        "```sh",
        f'alb_dns="$({read.format(output=LOAD_BALANCER_DNS_OUTPUT)})"',
        f'alb_zone="$({read.format(output=LOAD_BALANCER_ZONE_OUTPUT)})"',
        'echo "$alb_dns"',
    ]
    if record.hosted_zone is not None:
        zone, setting = record.hosted_zone
        batch = {
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": record.name,
                        "Type": "A",
                        "AliasTarget": {
                            "HostedZoneId": "$alb_zone",
                            "DNSName": "$alb_dns",
                            "EvaluateTargetHealth": False,
                        },
                    },
                }
            ]
        }
        change = json.dumps(batch, separators=(",", ":")).replace('"', '\\"')  # inside "...": $alb_* expand
        out += [
            f"# In the hosted zone {zone} ({setting}), if it holds {record.name}: an alias A record",
            f'aws route53 change-resource-record-sets --hosted-zone-id {zone} --change-batch "{change}"',
        ]
    out += ["```", ""]
    if record.hosted_zone is None:
        out.append(
            f"No hosted zone is in the settings for this name: create the record at your DNS provider, a CNAME "
            f"from `{record.name}` to the DNS name printed above (or an alias A record in the Route 53 hosted zone "
            "that holds it, with the load balancer's hosted zone, `$alb_zone`)."
        )
    else:
        out.append(
            f"If `{record.name}` is in another zone or at another DNS provider, create it there: a CNAME to the DNS "
            "name printed above."
        )
    return out


@dataclass(frozen=True)
class Handover:
    """One folder's deployment: who it is for, where, with which tags, and its stacks."""

    title: str  # "shop prod", "shop shared stacks"
    folder: str
    account: str
    tags: tuple[str, ...]  # Key=Value, the stack tags
    plans: tuple[StackPlan, ...]
    cost: str = ""  # one sentence: the fixed monthly cost of the folder's own stacks, and the prices' date
    blocked: Mapping[str, str] = dataclasses.field(default_factory=dict)  # stack: why deploy.sh refuses it
    origins: tuple[OriginRecord, ...] = ()  # the DNS names CloudFront reaches the load balancer by
    # (region, repository) -> (the stack whose policy grants the environments' pulls, a replica's template?)
    repositories: Mapping[tuple[str, str], tuple[str, bool]] = dataclasses.field(default_factory=dict)

    def home(self, stack: StackPlan) -> str:
        """The output folder a stack's templates are in (and its record under ``deployed/``)."""
        return (
            self.folder
            if stack.elsewhere is None
            else posixpath.basename(posixpath.normpath(posixpath.join(self.folder, stack.elsewhere)))
        )

    def record(self, stack: StackPlan) -> str:
        """Where deploy.sh records the stack's template once deployed, under ``$deployed``."""
        return f"{self.home(stack)}/{stack.region}/{stack.name}.json"

    @property
    def own(self) -> list[StackPlan]:
        """The stacks this folder's script deploys: its own, and its DR partner's it needs."""
        return [p for p in self.plans if p.deployed_here]

    @property
    def shared(self) -> list[StackPlan]:
        return [p for p in self.plans if not p.deployed_here]

    @property
    def partners(self) -> list[StackPlan]:
        return [p for p in self.plans if p.partner is not None]

    def tags_of(self, stack: StackPlan) -> tuple[str, ...]:
        """A partner's stack keeps its own environment's tag."""
        if stack.partner is None:
            return self.tags
        return tuple(f"Environment={stack.partner}" if t.startswith("Environment=") else t for t in self.tags)

    @property
    def required(self) -> dict[str, Required]:
        """The parameters without a default, by the variable the script reads them from."""
        found: dict[str, Required] = {}
        for stack in self.own:
            for parameter in stack.required:
                entry = found.setdefault(parameter.variable, Required(parameter.variable, parameter.name, [], set()))
                entry.stacks.append(stack.name)
                entry.descriptions.add(parameter.description)
        return found


@dataclass
class Required:
    """One environment variable the script needs: the parameter it fills, in every stack that has it."""

    variable: str
    parameter: str
    stacks: list[str]
    descriptions: set[str]

    def __str__(self) -> str:
        """``ImageTag of a, b: its description`` (one value for all of them)."""
        text = f"{self.parameter} of {', '.join(self.stacks)}"
        if len(self.descriptions) == 1 and (description := next(iter(self.descriptions))):
            return f"{text}: {_cell(description)}"
        return text + (" (one value for all of them)" if len(self.stacks) > 1 else "")


def repository_holders(
    plans: Sequence[StackPlan], templates: Mapping[str, Mapping[str, Any]]
) -> dict[tuple[str, str], tuple[str, bool]]:
    """``{(region, repository): (stack, replica)}`` for each image a service stack runs: the stack whose
    ``AWS::ECR::Repository`` (its ``RepositoryPolicyText``) grants the pulls, or, in a region ECR
    replicates to, the stack whose ``AWS::ECR::RepositoryCreationTemplate`` gives the replica its
    policy (a prefix of the repository's name, "ROOT" for every one: CloudFormation User Guide,
    AWS::ECR::RepositoryCreationTemplate, Prefix)."""
    found: dict[tuple[str, str], tuple[str, bool]] = {}
    wanted = {p.image_tag.registry[1:] for p in plans if p.image_tag is not None and p.image_tag.registry}
    kinds = ("AWS::ECR::Repository", "AWS::ECR::RepositoryCreationTemplate")
    for stack in plans:
        for resource in templates[stack.name].get("Resources", {}).values():
            kind, properties = resource.get("Type"), resource.get("Properties", {})
            if kind not in kinds:
                continue
            for region, repository in wanted:
                if region != stack.region or (region, repository) in found:
                    continue
                if kind == kinds[0] and properties.get("RepositoryName") == repository:
                    found[(region, repository)] = (stack.name, False)
                prefix = properties.get("Prefix")
                if kind == kinds[1] and (prefix == "ROOT" or repository.startswith(f"{prefix}/")):
                    found[(region, repository)] = (stack.name, True)
    return found


# --- the files --------------------------------------------------------------------------------


def handover_files(
    manifest: Mapping[str, Any],
    templates: Mapping[str, Mapping[str, Any]],
    folder: str,
    tags: Mapping[str, str],
    *,
    blocked: Mapping[str, str] | None = None,
    hosted_zone: tuple[str, str] | None = None,
    project_account: str | None = None,
) -> dict[str, str]:
    """``DEPLOY.md`` and ``deploy.sh`` of the folder named ``folder``, whose manifest is ``manifest``.

    ``tags`` are put on every stack (CloudFormation copies them to the resources that take tags).
    ``blocked`` (``{stack: why}``): stacks deploy.sh refuses unless ``ALLOW_REPLACE`` names them.
    ``hosted_zone`` (zone id, the setting it comes from): where DEPLOY.md creates the origin names' records.
    ``project_account``: the account of the project's stacks (the registry's), where it is not this folder's:
    status.sh leaves them to the project folder's status.sh (None: the same account).
    """
    environment = manifest.get("environment")
    plans = tuple(plan(manifest, templates, folder))
    context = Handover(
        title=f"{manifest['project']} {environment if environment else 'shared stacks'}",
        folder=folder,
        account=str(manifest["account_id"]),
        tags=tuple(f"{k}={v}" for k, v in tags.items()),
        plans=plans,
        cost=_cost(manifest, templates, folder),
        blocked=dict(blocked or {}),
        origins=origin_records(plans, templates, hosted_zone),
        repositories=repository_holders(plans, templates),
    )
    stacks = [
        (
            p.name,
            p.region,
            p.elsewhere is None,
            "" if p.elsewhere is None else f"{p.partner}'s stack" if p.partner else "project stack",
            # the project's stacks are in the registry's account (project_account), a DR partner's in this one
            (project_account or context.account) if not p.deployed_here else context.account,
            context.home(p),
        )
        for p in context.plans
    ]
    return {
        GUIDE: deploy_guide(context),
        SCRIPT: deploy_script(context),
        **day2.day2_files(context.title, folder, context.account, stacks, templates),
    }


def _command(context: Handover, stack: StackPlan, template: str, overrides: list[str]) -> list[str]:
    """The lines of one ``aws cloudformation deploy`` (without its execute/review option)."""
    q = shlex.quote
    lines = [
        "aws cloudformation deploy",
        f"--stack-name {q(stack.name)}",
        f"--region {q(stack.region)}",
        f"--template-file {template}",
    ]
    if stack.upload_bucket:  # beyond the 51,200 bytes CloudFormation takes in a request
        lines.append(f"--s3-bucket {q(stack.upload_bucket)} --s3-prefix templates")
    if stack.capabilities:
        lines.append(f"--capabilities {' '.join(stack.capabilities)}")
    if overrides:
        lines.append(f"--parameter-overrides {' '.join(overrides)}")
    lines.append(f"--tags {' '.join(q(t) for t in context.tags_of(stack))}")
    return lines


def deploy_script(context: Handover) -> str:
    q = shlex.quote
    own, account, title = context.own, context.account, context.title
    out = [
        "#!/usr/bin/env bash",
        f"# Deploys {title}: the {_stacks(len(own))} of this folder, in order, to account {account}.",
        "# Generated by infra-templates; do not edit: change the environment files and run `make templates`.",
        "#",
        "#   ./deploy.sh            create or update every stack, then turn on termination protection",
        "#                          where a stack holds data; stops at the first failure",
        "#   ./deploy.sh --review   only create a change set per stack and leave it unexecuted: review",
        "#                          each in the CloudFormation console (or with the command printed)",
        "#",
        "# Needs the AWS CLI signed in to that account. DEPLOY.md beside this script explains each step.",
        "# Each stack deployed is recorded in $DEPLOYED_DIR (default: deployed/ beside output/) as",
        "# <folder>/<region>/<stack>.json: the baseline of `make diff`. ALLOW_REPLACE=stack[,stack]: deploy",
        "# a stack whose update the diff blocks (a stateful resource replaced or deleted, a change AWS refuses).",
    ]
    for stack in context.shared:
        out.append(f"# Deployed first, once for every environment, by {stack.elsewhere}/deploy.sh: {stack.name}.")
    if context.partners:
        out.append(
            "# Deployed here too, from their own folders, where this environment needs them: "
            + ", ".join(f"{s.name} ({s.elsewhere}/)" for s in context.partners)
            + "."
        )
    if context.required:
        out.append("# Parameters without a default, read from environment variables:")
        out.extend(f"#   {variable:<24} {required}" for variable, required in context.required.items())
    out += [
        "set -euo pipefail",
        "",
        *_deploy_help(context),
        'here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
        'deployed="${DEPLOYED_DIR:-$here/../../deployed}"',
        "review=false",
        *day2.HELP_ANYWHERE,
        'case "$*" in',
        '  "") ;;',
        "  --review) review=true ;;",
        '  *) echo "deploy.sh: unknown option or argument: $*" >&2',
        '     echo "usage: $0 [--review] (or --help)" >&2; exit 2 ;;',
        "esac",
        "# Options of every deploy below: succeed when nothing changed; with --review, create the change set",
        '# and stop. (Never empty, so "${changeset[@]}" also works under `set -u` in bash 3.2, as on macOS.)',
        "changeset=(--no-fail-on-empty-changeset)",
        'if [[ "$review" == true ]]; then',
        "  changeset+=(--no-execute-changeset)",
        "fi",
        "# record FOLDER REGION STACK TEMPLATE: the stack is deployed; its JSON template becomes the baseline",
        "# make diff compares the next build with.",
        'record() { mkdir -p "$deployed/$1/$2" && cp "$here/$4" "$deployed/$1/$2/$3.json"; }',
        *_ecr_functions(context),
        "",
    ]
    if context.required:
        out.append("# Every value first, so a missing one stops the script before any stack changes.")
        out.extend(
            f': "${{{v}:?set {v}: {r.parameter} of {", ".join(r.stacks)}}}"' for v, r in context.required.items()
        )
        out.append("")
    out += [
        "command -v aws >/dev/null || { echo 'deploy.sh: the AWS CLI (aws) is not installed' >&2; exit 1; }",
        *day2.signed_in_check("deploy.sh", title, account, "nothing was changed", var="account"),
    ]
    if context.shared:
        names = ", ".join(f"{s.name} ({s.elsewhere}/deploy.sh)" for s in context.shared)
        out.append(f'echo "Assumes the shared stacks are up: {names}"')
    out += _preflight(context)
    for stack in own:
        overrides = [f'"{p.name}=${{{p.variable}:?set {p.variable}}}"' for p in stack.required]
        overrides += [f'"{p.name}=${p.variable.lower()}"' for p in stack.sourced]
        command = _command(context, stack, f'"$here/{stack.template}"', overrides)
        command.append('"${changeset[@]}"')
        out += [
            "",
            f"# {stack.order}/{len(own)} {stack.name}",
            f'echo "==> {stack.order}/{len(own)} {stack.name} ({stack.region})"',
            *([f"skip_{stack.order}=false"] if stack.sourced or stack.image_tag else []),
        ]
        skips = []
        for p in stack.sourced:
            assert p.source is not None
            source, output, region = p.source
            var = p.variable.lower()
            out += [
                f"# {p.name} is an output of {source} in {region}: ImportValue cannot cross regions. Only",
                '# CloudFormation\'s "does not exist" means the stack is not there yet; any other error stops here.',
                f'if ! {var}="$(aws cloudformation describe-stacks \\',
                f"  --stack-name {q(source)} --region {q(region)} \\",
                f'  --query "Stacks[0].Outputs[?OutputKey==\'{output}\'].OutputValue" --output text 2>&1)"; then',
                f'  case "${var}" in',
                f'    {day2.stack_absent(source)}) {var}="" ;;',
                f'    *) echo "deploy.sh: could not read the output {output} of {source} ({region}), which '
                f"{stack.name} needs as {p.name}; the stacks before {stack.name} are deployed, it and those "
                "after it are not: fix the cause (a permission your identity lacks, expired credentials...) "
                "and run this script again. "
                f"The AWS CLI said: ${{{var}//$'\\n'/ }}\" >&2",
                "      exit 1 ;;",
                "  esac",
                "fi",
                f'if [[ -z "${var}" || "${var}" == None ]]; then',
                '  if [[ "$review" == true ]]; then',
                f'    echo "    skipped: {source} ({region}) has no output {output} yet (deploy it first)"',
                f"    skip_{stack.order}=true",
                "  else",
                f'    echo "deploy.sh: {source} ({region}) has no output {output}, which {stack.name} needs as '
                f'{p.name}: deploy {source} first" >&2',
                "    exit 1",
                "  fi",
                "fi",
            ]
            skips.append(f"skip_{stack.order}")
        tag = stack.image_tag
        if tag is not None:
            out += [
                f'if [[ "$missing_tag_{tag.slug}" != 0 && "$review" == true ]]; then',
                f'  echo "    skipped: {tag.parameter} does not exist yet, so there is no change set to review '
                f'(give {tag.variable} and run without --review)"',
                f"  skip_{stack.order}=true",
                f'elif [[ "$missing_tag_{tag.slug}" != 0 ]]; then',
                f'  echo "    first deployment: {tag.parameter} = ${tag.variable}"',
                f'  aws ssm put-parameter --name {q(tag.parameter)} --type String --value "${tag.variable}" '
                f"--region {q(stack.region)} >/dev/null",
                "fi",
            ]
            skips.append(f"skip_{stack.order}")
        if skips:
            out.append(f'if [[ "$skip_{stack.order}" == false ]]; then')
        out.append(" \\\n  ".join(command))
        home = context.home(stack)
        out.append(f'[[ "$review" == true ]] || record {home} {stack.region} {stack.name} {q(stack.json_template)}')
        if stack.protect:
            out += [
                f"# It holds {', '.join(stack.holds)}: deleting the stack must take a deliberate step.",
                'if [[ "$review" == false ]]; then',
                "  aws cloudformation update-termination-protection --enable-termination-protection \\",
                f"    --stack-name {q(stack.name)} --region {q(stack.region)} >/dev/null",
                f'  echo "    termination protection on for {stack.name}"',
                "fi",
            ]
        if skips:
            out.append("fi")
    out += [
        "",
        'if [[ "$review" == true ]]; then',
        '  echo "Change sets created, none executed: review them, then run this script without --review."',
        "else",
        f'  echo "{title}: {_stacks(len(own))} deployed."',
        *_origin_reminders(context),
        "fi",
    ]
    return "\n".join(out) + "\n"


def _deploy_help(context: Handover) -> list[str]:
    """deploy.sh's ``--help``: what it does, each variable it reads, its exit statuses."""
    own, title = context.own, context.title
    variables: list[tuple[str, str]] = []
    tagged = [s.image_tag for s in own if s.image_tag is not None]
    if tagged:
        variables.append(
            (
                "IMAGE_TAG",
                "the image tag of every service's first deployment (its SSM parameter does not exist yet; "
                "an existing one is never overwritten)",
            )
        )
        variables += [(t.variable, f"the same for {t.service} only ({t.parameter}); before IMAGE_TAG") for t in tagged]
    variables += [(v, str(r)) for v, r in context.required.items()]
    blocked = ", ".join(s.name for s in own if s.name in context.blocked) or "none in this build"
    variables += [
        (
            "ALLOW_REPLACE",
            f"stack[,stack]: deploy a stack whose update make diff blocks (a stateful resource replaced or deleted, "
            f"a change AWS refuses) all the same; blocked: {blocked}",
        ),
        (
            "DEPLOYED_DIR",
            "where each stack deployed is recorded, <folder>/<region>/<stack>.json, the baseline of "
            "make diff (default: deployed/ beside output/)",
        ),
    ]
    checks = [
        "the account",
        "no stack CloudFormation cannot update now (ROLLBACK_COMPLETE, a failed rollback or delete, "
        "an operation in progress)",
    ]
    checks += ["the services' first image tags and their images in ECR"] if tagged else []
    checks += ["the secrets and SSM parameters the services read"] if any(s.secrets for s in own) else []
    checks += ["the certificates the templates name"] if any(s.certificates for s in own) else []
    checks += ["the updates make diff blocks"]
    about = [
        f"Deploys {title}: the {_stacks(len(own))} of this folder, in order, to account {context.account}, with",
        "the AWS CLI signed in to that account; then turns termination protection on where a stack holds data.",
        "Before any stack it checks what would stop it half-way:",
        f"{', '.join(checks)}. DEPLOY.md beside it explains each step.",
    ]
    return day2.help_lines(
        "./deploy.sh [--review]",
        about,
        [
            ("(none)", "create or update every stack; stops at the first failure"),
            ("--review", "only create a change set per stack and execute none: review each in the console"),
            ("-h, --help", "print this help and exit"),
        ],
        variables,
        [
            ("0", "every stack deployed (with --review: every change set created)"),
            (
                "1",
                "a check failed and no stack was changed (the messages say which and what to do: a check AWS "
                "answered with an error says so and quotes it), or a variable a parameter needs is not set; or, "
                "between two stacks, an output a stack needs could not be read or is missing: the message says "
                "which, and the stacks before it are deployed",
            ),
            ("2", "an unknown option or argument (--help wherever it is: this help, exit 0)"),
            ("other", day2.CLI_STATUS + ": the stacks before it are deployed"),
        ],
    )


def _origin_reminders(context: Handover) -> list[str]:
    """deploy.sh's last words for each origin name no stack holds a record of: the one step the script
    cannot take (DEPLOY.md, "The origin name"), with the load balancer's DNS name to point it at. Until
    that record resolves, CloudFront cannot reach the load balancer and every web route answers 502
    (CloudFront Developer Guide, "HTTP 502 status code (DNS error)", NonS3OriginDnsError)."""
    q = shlex.quote
    out = []
    for record in (r for r in context.origins if not r.managed_by):
        read = (
            f"aws cloudformation describe-stacks --stack-name {q(record.stack)} --region {q(record.region)} "
            f"--query \"Stacks[0].Outputs[?OutputKey=='{LOAD_BALANCER_DNS_OUTPUT}'].OutputValue\" --output text"
        )
        out += [
            f'  alb_dns="$({read} 2>&1)" || alb_dns="(its DNS name: could not read it, ${{alb_dns//$\'\\n\'/ }})"',
            f'  echo "One step is yours, once: {record.name} must resolve to the load balancer, $alb_dns '
            "(a CNAME, or a Route 53 alias A record), and its certificate must cover that name: "
            "no stack creates that record, and until it "
            "resolves CloudFront reaches no web route (502). DEPLOY.md, 'The origin name', gives the commands.\"",
        ]
    return out


def _preflight(context: Handover) -> list[str]:
    """The checks before any stack: what would otherwise stop the deployment half-way."""
    q = shlex.quote
    own = context.own
    out = [
        "",
        "# Pre-flight, before any stack: what would stop the deployment half-way is found now.",
        "failed=false",
        "# A stack CloudFormation cannot update now: ROLLBACK_COMPLETE and ROLLBACK_FAILED (a failed first",
        "# create: it can only be deleted), UPDATE_ROLLBACK_FAILED (its rollback must be continued first:",
        "# ContinueUpdateRollback), DELETE_FAILED (a failed delete) and any operation still in progress",
        '# (CloudFormation User Guide, "Stack status codes"; API Reference, ContinueUpdateRollback).',
    ]
    for region in dict.fromkeys(s.region for s in own):
        var = "blocking_" + re.sub(r"[^a-z0-9]", "_", region)
        out += [
            f'if ! {var}="$(aws cloudformation list-stacks --region {q(region)} '
            f"--stack-status-filter {' '.join(BLOCKING_STATUSES)} "
            '--query "StackSummaries[].[StackName,StackStatus]" --output text 2>&1)"; then',
            f'  echo "deploy.sh: could not list the stacks CloudFormation cannot update now in {region} '
            "(cloudformation:ListStacks), so whether a stack of this folder is one is unknown: "
            "fix the cause (a permission your identity lacks, expired credentials...) and run this script "
            "again. The AWS CLI said: "
            f"${{{var}//$'\\n'/ }}\" >&2",
            f'  {var}=""',
            "  failed=true",
            "fi",
        ]
        for stack in (s for s in own if s.region == region):
            name = stack.name
            out += [
                f'case "$(awk -v n={q(name)} \'$1 == n {{print $2; exit}}\' <<<"${var}")" in',
                "  ROLLBACK_COMPLETE | ROLLBACK_FAILED)",
                "    cat >&2 <<'EOF'",
                f"deploy.sh: {name} ({region}) is in ROLLBACK_COMPLETE or ROLLBACK_FAILED: its first create failed, "
                "and such a stack can only be deleted. Delete it, then run this script again:",
                f"  aws cloudformation delete-stack --stack-name {name} --region {region}",
                "EOF",
                "    failed=true ;;",
                "  UPDATE_ROLLBACK_FAILED)",
                "    cat >&2 <<'EOF'",
                f"deploy.sh: {name} ({region}) is in UPDATE_ROLLBACK_FAILED: CloudFormation could not roll its last "
                "update back and updates nothing until the rollback goes on. Fix what its events name, then:",
                f"  aws cloudformation continue-update-rollback --stack-name {name} --region {region}",
                "EOF",
                "    failed=true ;;",
                "  DELETE_FAILED)",
                "    cat >&2 <<'EOF'",
                f"deploy.sh: {name} ({region}) is in DELETE_FAILED: a delete of it stopped half-way. Finish it "
                "(its events name what blocked it), then run this script again:",
                f"  aws cloudformation delete-stack --stack-name {name} --region {region}",
                "EOF",
                "    failed=true ;;",
                "  *_IN_PROGRESS)",
                f'    echo "deploy.sh: {name} ({region}) has an operation in progress: wait for it to end, then run '
                'this script again" >&2',
                "    failed=true ;;",
                "esac",
            ]
    for stack in own:
        tag = stack.image_tag
        if tag is None:
            continue
        var = f"missing_tag_{tag.slug}"
        out += [
            f"# {stack.name} runs the tag held in {tag.parameter} (SSM); its first deployment creates the parameter",
            f"# from ${tag.variable} (or $IMAGE_TAG), and never overwrites one: that would roll a release back.",
            f'{tag.variable}="${{{tag.variable}:-${{IMAGE_TAG:-}}}}"',
            f'if ! {var}="$(aws ssm get-parameters --names {q(tag.parameter)} --region {q(stack.region)} '
            '--query "length(InvalidParameters)" --output text 2>&1)"; then',
            f'  echo "deploy.sh: could not read the SSM parameter {tag.parameter} ({stack.region}), the image tag '
            f"{stack.name} runs, so whether this is its first deployment is unknown: fix the cause (a permission "
            "your identity lacks, ssm:GetParameters; expired credentials...) and run this script again. The AWS CLI "
            f"said: ${{{var}//$'\\n'/ }}\" >&2",
            "  failed=true",
            f'elif [[ "${var}" != 0 && "$review" == false ]]; then',
            f'  if [[ -z "${tag.variable}" ]]; then',
            "    cat >&2 <<'EOF'",
            f"deploy.sh: {tag.parameter} (SSM, {stack.region}) does not exist: the first deployment of {stack.name} "
            f"needs the image tag to run. Give it as {tag.variable}=<tag> (or IMAGE_TAG=<tag> for every service), "
            "or create the parameter yourself:",
            f"  aws ssm put-parameter --name {tag.parameter} --type String --value <tag> --region {stack.region}",
            "EOF",
            "    failed=true",
        ]
        if tag.registry is not None:
            out += _image_check(context, tag)
        out += ["  fi", "fi"]
    seen: set[tuple[str, str]] = set()
    for stack in own:
        for secret in stack.secrets:
            if (secret.kind, secret.name) in seen:
                continue
            seen.add((secret.kind, secret.name))
            out += _secret_check(context, stack, secret, len(seen))
    certificates = dict.fromkeys((arn, s.name) for s in own for arn in s.certificates)
    for index, arn in enumerate(dict.fromkeys(a for a, _ in certificates), 1):
        owners = ", ".join(n for a, n in certificates if a == arn)
        var = f"certificate_{index}"
        # The settings keep a certificate in the environment's account (an ALB or CloudFront uses no other's):
        # ResourceNotFoundException is "not there"; any other error is the call's, said as such.
        out += [
            f'if ! {var}="$(aws acm describe-certificate --certificate-arn {q(arn)} '
            f'--region {arn.split(":")[3]} --query Certificate.Status --output text 2>&1)"; then',
            f'  if [[ "${var}" == *ResourceNotFound* ]]; then',
            f'    echo "deploy.sh: the certificate {arn}, which {owners} uses, does not exist in account '
            f'{context.account}: request or import it there, or correct the setting" >&2',
            "  else",
            f'    echo "deploy.sh: could not read the certificate {arn}, which {owners} uses: ${var}" >&2',
            "  fi",
            "  failed=true",
            "fi",
        ]
    for stack in own:
        why = context.blocked.get(stack.name)
        if why is None:
            continue
        record = context.record(stack)
        out += [
            f"# make diff's verdict for {stack.name} against deployed/{record} when this script was generated;",
            "# it holds while that record still differs from the template to deploy.",
            f'if ! cmp -s "$deployed/{record}" "$here/{stack.json_template}" && '
            f'[[ ",${{ALLOW_REPLACE:-}}," != *",{stack.name},"* ]]; then',
            '  if [[ "$review" == true ]]; then  # a change set changes nothing: made, for its review',
            f'    echo "deploy.sh: note: {stack.name} would be refused without --review; review its change set"',
            "  else",
            "    cat >&2 <<'EOF'",
            f"deploy.sh: refusing {stack.name}: {why}.",
            f"  See `make diff ENV={context.home(stack)}`. " + _way_through(stack.name, why),
            "EOF",
            "    failed=true",
            "  fi",
            "fi",
        ]
    out += [
        'if [[ "$failed" == true ]]; then',
        '  echo "deploy.sh: the pre-flight checks above failed; no stack was changed" >&2',
        "  exit 1",
        "fi",
    ]
    return out


# The AWS CLI's words for a request refused for its credentials (missing, expired, unknown): a shell pattern.
CREDENTIALS_REFUSED = (
    '*"Unable to locate credentials"*|*ExpiredToken*|*InvalidClientTokenId*|*UnrecognizedClient*|*"security token"*'
)


def _ecr_functions(context: Handover) -> list[str]:
    """deploy.sh's two verdicts on an image tag ECR did not confirm: ``ecr_error`` when the request
    failed (the AWS CLI's error text: access refused, no such repository, credentials refused, other),
    ``ecr_missing`` when ECR answered with a failure code for the image (ECR API Reference,
    ImageFailure: ImageNotFound, ImageTagDoesNotMatchDigest, InvalidImageTag, KmsError...). Each says
    what to do; none is read as "not pushed" unless ECR said so."""
    if not any(s.image_tag is not None and s.image_tag.registry is not None for s in context.own):
        return []
    return [
        "# ecr_error TEXT REPOSITORY TAG REGISTRY REGION POLICY MISSING: ECR answered the image check with an error",
        "# (TEXT, the AWS CLI's); POLICY: what grants this account the read; MISSING: what creates the repository.",
        "ecr_error() {",
        '  case "$1" in',
        "    *AccessDenied*)",
        '      echo "deploy.sh: account $account may not read the repository $2 (ECR, account $4, $5), so whether'
        " $2:$3 is there is unknown: $6 must allow account $account ecr:BatchGetImage, and your IAM identity needs"
        ' that action on it too. The AWS CLI said: $1" >&2 ;;',
        "    *RepositoryNotFound*)",
        '      echo "deploy.sh: the repository $2 does not exist in ECR (account $4, $5): $7. The AWS CLI said: $1"'
        " >&2 ;;",
        f"    {CREDENTIALS_REFUSED})",
        "      echo \"deploy.sh: AWS refused the CLI's credentials while checking $2:$3 in ECR: sign in again, then"
        ' run this script again. The AWS CLI said: $1" >&2 ;;',
        '    *) echo "deploy.sh: could not check the image $2:$3 in ECR (account $4, $5): $1" >&2 ;;',
        "  esac",
        "}",
        "# ecr_missing CODE REPOSITORY TAG REGISTRY REGION NOTE: ECR answered, with this failure code for the image.",
        "ecr_missing() {",
        '  case "$1" in',
        "    ImageNotFound|ImageTagDoesNotMatchDigest|InvalidImageTag)",
        '      echo "deploy.sh: the image $2:$3 is not in ECR (account $4, $5; ECR: $1)$6: push it first, or give'
        ' the tag of one that is" >&2 ;;',
        '    *) echo "deploy.sh: ECR did not return the image $2:$3 (account $4, $5): $1" >&2 ;;',
        "  esac",
        "}",
    ]


def _image_check(context: Handover, tag: ImageTag) -> list[str]:
    """The check that ECR holds the first tag a service is given, run with the environment account's
    credentials: ``batch-get-image``, the action a pull makes (ECR API Reference, BatchGetImage: "When an
    image is pulled, the BatchGetImage API is called once to retrieve the image manifest") and the one
    the repository policy grants the environment accounts (templates/registry.py). A call into another
    account's repository needs the repository policy to allow the action (ECR User Guide, "Private
    repository policies in Amazon ECR"); ``describe-images`` is not granted, and granting it would let
    every environment list the project's images: the pull action answers the one question asked. An
    image it lacks is a ``failures[].failureCode`` of a successful call (ECR API Reference, ImageFailure),
    told apart from a refused call (ecr_error)."""
    assert tag.registry is not None
    q = shlex.quote
    registry, region, repository = tag.registry
    holder = context.repositories.get((region, repository))
    var = f"image_{tag.slug}"
    if holder is None:
        policy = f"the policy of the repository {repository}"
        missing = f"create it in account {registry}, {region}"
        note = ""
    elif holder[1]:  # a replica: created by ECR from the registry's repository creation template
        policy = f"the repository creation template of {holder[0]} (../{SHARED_FOLDER}/deploy.sh)"
        missing = (
            f"ECR creates it in {region} as it replicates the first image pushed once the shared stacks are "
            f"deployed (../{SHARED_FOLDER}/deploy.sh): release the service once"
        )
        note = f"; {region} holds a replica: only images pushed after replication was set up, minutes after the push"
    else:
        policy = f"the repository policy of {holder[0]} (../{SHARED_FOLDER}/deploy.sh)"
        missing = f"deploy the shared stacks first: ../{SHARED_FOLDER}/deploy.sh, in account {registry}"
        note = ""
    return [
        f'  elif ! {var}="$(aws ecr batch-get-image --registry-id {registry} --repository-name {q(repository)} '
        f'--image-ids imageTag="${tag.variable}" --region {region} --query "failures[0].failureCode" '
        '--output text 2>&1)"; then',
        f'    ecr_error "${var}" {q(repository)} "${tag.variable}" {registry} {region} {q(policy)} {q(missing)}',
        "    failed=true",
        f'  elif [[ "${var}" != None ]]; then',
        f'    ecr_missing "${var}" {q(repository)} "${tag.variable}" {registry} {region} {q(note)}',
        "    failed=true",
    ]


def _settings_path(stack: StackPlan, secret: SecretRef) -> str:
    """Where the environment file gives the reference: the service's ``secrets`` or a sidecar's."""
    service = stack.image_tag.service if stack.image_tag is not None else secret.container
    if secret.container == service:
        return f"services.{service}.secrets.{secret.variable}"
    return f"services.{service}.sidecars (the sidecar {secret.container}), secrets.{secret.variable}"


# The file a secret's value is typed into and read from (file://: AWS CLI User Guide, "Loading a parameter
# from a file in the AWS CLI"), never on a command line, where it would land in the shell's history and
# the process list (Secrets Manager User Guide, "Mitigate the risks of using the AWS CLI to store your
# AWS Secrets Manager secrets", which types the value into a file with cat, then removes it).
VALUE_FILE = "value.txt"
VALUE_STEPS = (f"(umask 077 && cat > {VALUE_FILE})", f"rm -f {VALUE_FILE}")


def _typing(value: str) -> str:
    """How to type ``value`` into VALUE_FILE at the first of VALUE_STEPS."""
    return (
        f"at `{VALUE_STEPS[0]}`, type `{value}` and then Ctrl-D twice, without Enter (a newline would be part "
        f"of the value); the file is readable by you alone and removed at once: the value is never on a command "
        "line, so never in your shell's history"
    )


def _secret_value(secret: SecretRef) -> str:
    """What the deployer types as the value: a JSON object with the key the reference reads, or the value."""
    if secret.kind == "secretsmanager" and secret.key:
        return '{"' + secret.key + '":"<value>"}'
    return "<value>"


def secret_steps(context: Handover, stack: StackPlan, secret: SecretRef) -> tuple[str, list[str], str]:
    """(what to do, the commands, the sentence saying where the result goes) to create one secret or parameter the
    services read. A secret is created by name without a suffix: Secrets Manager appends "-" and 6
    random characters to its ARN (Secrets Manager API Reference, CreateSecret, "ARN"; the docs advise
    against names ending in "-" and 6 characters), so the complete name is only known once it exists,
    and differs in every account and region. Both are created with the account's default keys
    (aws/secretsmanager, aws/ssm): the task execution role has no kms:Decrypt, needed only for a key of
    one's own (ECS Developer Guide, "Required IAM permissions for Amazon ECS secrets")."""
    q = shlex.quote
    environment = stack.partner or context.folder
    path = _settings_path(stack, secret)
    file = f"environments/{environment}.yaml"
    if secret.kind == "secretsmanager":
        region = secret.region
        value = _secret_value(secret)
        key = f"#{secret.key}" if secret.key else ""
        commands = [
            VALUE_STEPS[0],
            f"aws secretsmanager create-secret --name {q(secret.base_name)} --region {region} "
            f"--secret-string file://{VALUE_FILE}",
            VALUE_STEPS[1],
            f"aws secretsmanager describe-secret --secret-id {q(secret.base_name)} --region {region} "
            "--query ARN --output text",
        ]
        what = (
            f"Create the secret `{secret.base_name}` in account `{context.account}`, region `{region}` (skip "
            f"create-secret if describe-secret finds it already; {_typing(value)}); its ARN ends with its complete "
            f"name, `{secret.base_name}-` and 6 random characters"
        )
        where = (
            f"Then put its complete name (the ARN's end, after `secret:`) in `{file}`, `{path}`: "
            f"`secretsmanager:<complete name>{key}` (now `secretsmanager:{secret.complete_name}{key}`), and run "
            "`make templates`."
        )
    else:
        region = stack.region
        commands = [
            VALUE_STEPS[0],
            f"aws ssm put-parameter --name {q(secret.name)} --type SecureString --value file://{VALUE_FILE} "
            f"--region {region}",
            VALUE_STEPS[1],
        ]
        what = (
            f"Create the SSM parameter `{secret.name}` (SecureString) in account `{context.account}`, region "
            f"`{region}` ({_typing('<value>')})"
        )
        where = f"Nothing to write: `{file}` names it already (`{path}`: `ssm:{secret.name}`)."
    return what, commands, where


def _secret_check(context: Handover, stack: StackPlan, secret: SecretRef, index: int) -> list[str]:
    """The pre-flight check of one secret or SSM parameter: absent (with the steps that create it),
    or unreadable (the AWS CLI's error: access, credentials), each with its own message."""
    q = shlex.quote
    _, commands, where = secret_steps(context, stack, secret)
    note = _typing(_secret_value(secret)).replace("`", "")
    commands = [*commands, f"({note[0].upper()}{note[1:]}.)"]
    var = f"secret_{index}"
    reads = f"which {stack.name} reads as {secret.variable}"
    if secret.kind == "secretsmanager":
        region = secret.region
        missing = [
            f'  if [[ "${var}" == *ResourceNotFound* ]]; then',
            "    cat >&2 <<'EOF'",
            f"deploy.sh: the secret {secret.complete_name} ({region}), {reads}, does not exist in account "
            f"{context.account}. No one chooses a secret's suffix (Secrets Manager adds 6 random characters): create "
            f"{secret.base_name}, the name without it (skip create-secret if describe-secret finds it already), and "
            "read its ARN:",
            *(f"  {c}" for c in commands),
            where.replace("`", "") + " Then run this script again.",
            "EOF",
            "  else",
            f'    echo "deploy.sh: could not read the secret {secret.complete_name} ({region}), {reads}: ${var}" >&2',
            "  fi",
        ]
        return [
            f'if ! {var}="$(aws secretsmanager describe-secret --secret-id {q(secret.name)} --region {region} '
            '--query ARN --output text 2>&1)"; then',
            *missing,
            "  failed=true",
            "fi",
        ]
    region = stack.region
    return [
        f'if ! {var}="$(aws ssm get-parameters --names {q(secret.name)} --region {region} '
        '--query "length(InvalidParameters)" --output text 2>&1)"; then',
        f'  echo "deploy.sh: could not read the SSM parameter {secret.name} ({region}), {reads}: ${var}" >&2',
        "  failed=true",
        f'elif [[ "${var}" != 0 ]]; then',
        "  cat >&2 <<'EOF'",
        f"deploy.sh: the SSM parameter {secret.name} ({region}), {reads}, does not exist in account "
        f"{context.account}: create it (a SecureString, with the account's default key):",
        *(f"  {c}" for c in commands),
        "EOF",
        "  failed=true",
        "fi",
    ]


def _way_through(stack: str, why: str) -> str:
    """What lifts deploy.sh's refusal of ``stack``. A ``cannot deploy`` verdict is an update CloudFormation
    itself refuses and rolls back (an export in use changed, a custom-named resource replaced: make diff's
    verdict): ALLOW_REPLACE cannot make it pass, only let the script try; a change to the settings can.
    A stateful resource replaced or deleted is a decision: ALLOW_REPLACE is how one takes it."""
    allow = f"ALLOW_REPLACE={stack} (comma-separated for several)"
    if why.startswith("cannot deploy"):
        return (
            "CloudFormation would refuse this update and roll the stack back: change the settings until make diff "
            f"no longer says 'cannot deploy'. {allow} only lets this script try it."
        )
    return f"To deploy it deliberately: {allow}."


def _cost(manifest: Mapping[str, Any], templates: Mapping[str, Mapping[str, Any]], folder: str) -> str:
    try:
        return cost.summary_line(cost.folder_estimate(manifest, templates, folder))
    except cost.CostError as error:
        return f"**What it costs:** not estimated: {error}."


def deploy_guide(context: Handover) -> str:
    own, account, title = context.own, context.account, context.title
    out = [
        f"# Deploying {title}",
        "",
        "Generated by infra-templates together with the templates beside it; do not edit: change the environment "
        "files and run `make templates`.",
        "",
        f"{_stacks(len(own))}, deployed in the order below into AWS account `{account}`. Start a "
        "stack only once the one before it is `CREATE_COMPLETE` or `UPDATE_COMPLETE`: later stacks import what "
        "earlier ones export.",
        "",
        *([context.cost, ""] if context.cost else []),
        "## Before you start",
        "",
        f"- The AWS CLI (v2), signed in to account `{account}` with the rights to create what the templates "
        "hold: `aws sts get-caller-identity` shows the account.",
    ]
    out.extend(
        f"- `{s.name}` (region `{s.region}`) is up: it is shared by every environment and deployed once, from "
        f"`{s.elsewhere}/` (see `{s.elsewhere}/{GUIDE}`), possibly in another account."
        for s in context.shared
    )
    if context.partners:
        names = ", ".join(f"`{s.name}`" for s in context.partners)
        out.append(
            f"- {names} belong to the other environment of this DR pair (same account) and are listed below where "
            "this environment needs them: deploy them from their folder's template at that point (the script "
            "does). If they are up already, deploying them again changes nothing."
        )
    # The checklist line of each origin name, pointing to its step (the commands) after the load balancer's stack.
    steps = {f"- `{r.name}` is the name": r.stack for r in context.origins}
    for line in _origin_name_steps(own):
        after = next((at for start, at in steps.items() if line.startswith(start)), None)
        out.append(line + (f" The step after `{after}` below gives the commands." if after else ""))
    out.append("- Run the commands below from this folder: they name the templates relative to it.")
    if context.required:
        out.append("- Set the values of the parameters without a default as environment variables:")
        out.extend(f"  `{variable}` for {required}" for variable, required in context.required.items())
    tagged = [s for s in own if s.image_tag is not None]
    if tagged:
        out.append(
            "- A service runs the image tag held in its SSM parameter, which the release writes. On the first "
            "deployment it does not exist yet: give the tag to run (the image must be in ECR), and the script "
            "creates the parameter right before the service's stack; it never overwrites one. With `--review` "
            "such a service is skipped (no change set can resolve a missing parameter):"
        )
        out.extend(
            f"  `{s.image_tag.variable}` (or `IMAGE_TAG` for every service) for `{s.image_tag.parameter}`, "
            f"used by `{s.name}`"
            for s in tagged
            if s.image_tag is not None
        )
    out.append(
        "- Before any stack the script checks that no stack of this folder is in a status CloudFormation updates "
        "nothing in (`ROLLBACK_COMPLETE`, a failed first create, which it can only delete; `UPDATE_ROLLBACK_FAILED`; "
        "`DELETE_FAILED`; an operation in progress), printing for each the command that clears it, and that the "
        "secrets, SSM parameters and certificates the templates name exist"
        + (' ("Secrets and parameters" below: the ones to create)' if any(s.secrets for s in own) else "")
        + ". `./deploy.sh --help` lists every variable it reads and its exit statuses."
    )
    out.append(
        "- After each stack it deploys, the script records the template in `deployed/<folder>/<region>/<stack>.json` "
        "(beside `output/`; `DEPLOYED_DIR` elsewhere): `make diff` compares the next build with that record. A stack "
        "whose update the diff blocks against it (a stateful resource replaced or deleted, or a change AWS refuses) "
        "stops the script before any stack, with the reason; `ALLOW_REPLACE=<stack>[,<stack>]` deploys it "
        "deliberately."
    )
    if context.blocked:
        out.extend(
            f"  - **Blocked when this guide was generated:** `{s.name}`: {_cell(context.blocked[s.name])}"
            for s in own
            if s.name in context.blocked
        )
    out += _secrets_section(context)
    out += [
        "",
        "## The short way: the script",
        "",
        "```sh",
        "./deploy.sh            # every stack in order; stops at the first failure",
        "./deploy.sh --review   # only change sets, none executed: review them in the console",
        "```",
        "",
        f"From the repository's root the same is `make deploy ENV={context.folder}` (and `REVIEW=1`). "
        "The script checks it is signed in to the right account, deploys each stack with the command shown "
        "below, and turns on termination protection where the table says so. `--review` on stacks that were "
        "never deployed stops at the first one that imports from a stack not yet created: deploy those first.",
        "",
        "## The stacks",
        "",
        "Termination protection makes deleting a stack that holds data a deliberate act: to delete one, first "
        "turn it off (Stack actions > Edit termination protection).",
        "",
        "| # | stack | region | template | capabilities | termination protection |",
        "|---|---|---|---|---|---|",
    ]
    out.extend(
        f"| {s.order} | `{s.name}` | `{s.region}` | `{s.template}` | {', '.join(s.capabilities) or 'none'} | "
        f"{'**on**' if s.protect else 'off'} |"
        for s in own
    )
    for stack in own:
        out += ["", *_stack_section(context, stack)]
        for record in (r for r in context.origins if r.stack == stack.name):
            out += ["", *origin_dns_section(record)]
    return "\n".join(out) + "\n"


def _secrets_section(context: Handover) -> list[str]:
    """DEPLOY.md's "Secrets and parameters": each secret and SSM parameter the services read, which the
    deployer creates in this account before the first deployment (no stack creates them: their values
    are never in a template), with the commands and where the result goes (``secret_steps``)."""
    found: dict[tuple[str, str], tuple[StackPlan, SecretRef, list[str]]] = {}
    for stack in context.own:
        for secret in stack.secrets:
            entry = found.setdefault((secret.kind, secret.name), (stack, secret, []))
            entry[2].append(f"`{stack.name}` as `{secret.variable}`")
    if not found:
        return []
    out = [
        "",
        "## Secrets and parameters",
        "",
        f"The services read these from account `{context.account}`; no stack creates them (a value never goes in a "
        "template). Create each once, before the first deployment, with the account's default keys "
        "(`aws/secretsmanager`, `aws/ssm`: the services' execution roles decrypt no key of your own). A secret's "
        "name in the environment file is its complete name, which Secrets Manager makes by adding `-` and 6 random "
        "characters when it creates the secret: so it differs in every account and region, and is only known once "
        "the secret exists. `deploy.sh` checks each before any stack.",
    ]
    for stack, secret, readers in found.values():
        what, commands, where = secret_steps(context, stack, secret)
        out += [
            "",
            f"- {what}; read by {', '.join(readers)}:",
            "",
            "  ```sh",
            *(f"  {c}" for c in commands),
            "  ```",
            "",
            f"  {where}",
        ]
    return out


def _stack_section(context: Handover, stack: StackPlan) -> list[str]:
    return [
        f"### {stack.order}. {stack.name}",
        "",
        *_facts(stack),
        "",
        *_parameter_table(stack),
        "",
        *_cli_block(context, stack),
        "",
        _console_line(context, stack),
        *_outputs_table(stack),
    ]


def _cli_block(context: Handover, stack: StackPlan) -> list[str]:
    command = _command(context, stack, stack.template, [f"{p.name}=<value>" for p in stack.required])
    command.append("--no-fail-on-empty-changeset")
    out = ["With the AWS CLI:", "", "```sh", " \\\n  ".join(command)]
    if stack.protect:
        out.append(
            "aws cloudformation update-termination-protection --enable-termination-protection "
            f"--stack-name {stack.name} --region {stack.region}"
        )
    return [*out, "```"]


def _facts(stack: StackPlan) -> list[str]:
    reasons = []
    if "CAPABILITY_NAMED_IAM" in stack.capabilities:
        reasons.append(f"`CAPABILITY_NAMED_IAM`: it creates IAM resources with names ({', '.join(stack.iam)})")
    elif "CAPABILITY_IAM" in stack.capabilities:
        reasons.append(f"`CAPABILITY_IAM`: it creates IAM resources ({', '.join(stack.iam)})")
    if "CAPABILITY_AUTO_EXPAND" in stack.capabilities:
        reasons.append("`CAPABILITY_AUTO_EXPAND`: the template uses a transform")
    capabilities = "; ".join(reasons) or "none"
    protection = f"**on**, it holds {', '.join(stack.holds)}" if stack.protect else "off, it holds no data"
    return [
        f"- Region: `{stack.region}`",
        f"- Template: `{stack.template}` (`{stack.json_template}` is the same template in JSON)",
        *(
            [
                f"- Uploaded through the bucket `{stack.upload_bucket}` (prefix `templates/`): the template is "
                "beyond the 51,200 bytes CloudFormation takes in a request (up to 1 MB from S3). Whoever deploys "
                f"it needs `s3:PutObject` and `s3:GetObject` on the objects `{stack.upload_bucket}/templates/*`: "
                "the AWS CLI uploads it, and CloudFormation reads it with the caller's credentials"
            ]
            if stack.upload_bucket
            else []
        ),
        f"- Deploy after: {', '.join(f'`{d}`' for d in stack.depends_on) or 'nothing, it comes first'}",
        f"- Capabilities: {capabilities}",
        f"- Termination protection: {protection}",
    ]


def _parameter_table(stack: StackPlan) -> list[str]:
    if not stack.parameters:
        return ["Parameters: none; every setting was decided when the template was generated."]
    out = ["Parameters:", "", "| name | type | default | where the value comes from |", "|---|---|---|---|"]
    for p in stack.parameters:
        if p.default is None:
            default = "none"
        else:
            default = "(hidden)" if p.no_echo else f"`{p.default}`" if p.default else "(empty)"
        source = p.description or "(no description in the template)"
        if p.source is not None:
            source += f"; the script reads it from the stack (`describe-stacks`, region `{p.source[2]}`)"
        elif p.default is None:
            source += f"; the script reads `${p.variable}`"
        out.append(f"| `{p.name}` | {p.type} | {default} | {_cell(source)} |")
    return out


def _console_line(context: Handover, stack: StackPlan) -> str:
    steps = [
        f"CloudFormation console, region `{stack.region}`",
        "**Create stack** > With new resources (an existing stack: select it > **Update** > Replace current template)",
        f"Upload a template file: `{stack.template}`",
        f"stack name `{stack.name}`",
    ]
    if stack.parameters:
        steps.append("fill in the parameters as in the table above")
    steps.append(f"tags {', '.join(f'`{t}`' for t in context.tags_of(stack))}")
    if stack.capabilities:
        steps.append("tick the acknowledgement(s) of " + ", ".join(f"`{c}`" for c in stack.capabilities))
    steps.append("**Submit**")
    if stack.protect:
        steps.append("once complete: Stack actions > Edit termination protection > Activated")
    return "In the console: " + " > ".join(steps) + "."


def _outputs_table(stack: StackPlan) -> list[str]:
    if not stack.outputs:
        return []
    return [
        "",
        "Once it is up, check its **Outputs** tab:",
        "",
        "| output | export | what it is |",
        "|---|---|---|",
        *(f"| `{o.key}` | {f'`{o.export}`' if o.export else '-'} | {_cell(o.description)} |" for o in stack.outputs),
    ]


def _stacks(count: int) -> str:
    return f"{count} CloudFormation stack{'' if count == 1 else 's'}"


def _cell(text: str) -> str:
    """Text that stays inside one Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
