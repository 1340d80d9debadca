"""From settings to files: run each layer's build, tag, render, and describe the stacks in order.

Two kinds of layer:
- an environment layer builds one stack per environment (``{project}-{env}-{layer}``), or with
  ``per_service`` one stack per service (``{project}-{env}-{layer}-{service}``);
- a project layer builds one stack for the whole project (``{project}-{layer}``) from every
  environment's settings, written to ``output/project/`` and listed first in each manifest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import cached_property, partial
from typing import Any

from troposphere import Sub, Template

from infra_templates import MANAGED_BY, addons
from infra_templates.config import Environment, Project
from infra_templates.handover import handover_files
from infra_templates.layer import SOURCES_METADATA, apply_permissions_boundary, apply_tags
from infra_templates.naming import permissions_boundary_name, stack_name, standard_tags
from infra_templates.quotas import TEMPLATE_BODY_BYTES
from infra_templates.render import keep_derived, made, once, template_dict, to_json, to_yaml

PROJECT_FOLDER = "project"
PROJECT_ENVIRONMENT_TAG = "shared"


@dataclass(frozen=True)
class LayerSpec:
    """One environment layer: its name, its build function and the layers it imports from.

    ``build(env)`` returns the template; with ``per_service`` it is ``build(env, service)`` and the
    layer yields one stack per service in the settings.
    """

    name: str
    build: Callable[..., Template]
    imports_from: tuple[str, ...] = ()
    per_service: bool = False
    region: Callable[[Environment], str] | None = None  # default: the environment's region
    when: Callable[[Environment], bool] | None = None  # default: always
    # Every role of the layer gets the environment's permissions boundary; False only for the layer
    # that defines the boundary and the deployer roles (they must manage IAM, the boundary denies it).
    bounded: bool = True
    # A per-service layer that takes service add-ons (addons/<env>/services/<service>.yaml): the
    # logical ID of the role their TaskRoleStatements are attached to.
    addon_role: str | None = None
    # The layer is the environment's template bucket, of this name: its stack is kept only when a
    # stack after it in its region is beyond the 51,200 bytes of a request body (JSON or YAML, the
    # larger); each such stack is deployed through the bucket (``upload_bucket``) and after it.
    template_bucket: Callable[[Environment], str] | None = None


@dataclass(frozen=True)
class ProjectLayerSpec:
    """One project layer: built once from every environment (``build(project)``).

    With ``per_service`` it is ``build(project, service)``, one stack per service
    (``{project}-{layer}-{service}``); with ``regions`` it is ``build(project, region)``, one stack
    per region it returns (``{project}-{layer}-{region}``, deployed in that region).
    """

    name: str
    build: Callable[..., Template]
    imports_from: tuple[str, ...] = ()
    per_service: bool = False
    regions: Callable[[Project], list[str]] | None = None
    when: Callable[[Project], bool] | None = None  # default: always
    # A bucket to upload the template through, for a template beyond 51,200 bytes (up to 1 MB)
    upload_bucket: Callable[[Project], str] | None = None


@dataclass
class Stack:
    """One built stack: its template as data and as text, and what it exports and imports."""

    name: str
    layer: str
    region: str
    body: dict[str, Any]
    depends_on: list[str]
    scope: str = "environment"
    home: str | None = None  # another environment's folder, for a stack listed in this one's manifest
    upload_bucket: str | None = None  # deployed through this bucket (a template beyond 51,200 bytes)

    @cached_property
    def yaml(self) -> str:
        """The template as YAML, rendered when first asked for (stacks built only to be read, such
        as those the deployer and the infrastructure pipeline derive from, are rendered only to
        measure those after the template bucket: ``template_bytes``); inside ``build_once``, once
        for every ``Stack`` carrying the same template data."""
        return once(self.body, "yaml", to_yaml)

    @cached_property
    def json(self) -> str:
        return once(self.body, "json", to_json)

    @cached_property
    def exports(self) -> list[str]:
        """The export names of the template's outputs, sorted (kept inside ``build_once``, as ``imports``)."""
        return once(self.body, "exports", _exports)

    @cached_property
    def imports(self) -> list[str]:
        """Every export name the template imports (it walks the whole template: asked for by every
        manifest that lists the stack, so kept; the template data does not change once built)."""
        return once(self.body, "imports", _imports)

    @property
    def parameters(self) -> dict[str, dict[str, str]]:
        """Each parameter and where its value comes from: another stack's output (and its region, when
        the template records it), an SSM parameter
        CloudFormation resolves itself (an ``AWS::SSM::Parameter::Value<...>`` type with its name as
        the default), or the deployer. Read once per template inside ``build_once`` (every manifest
        listing the stack asks): shared, not to be changed."""
        return once(self.body, "parameters", _parameters)

    @property
    def resource_count(self) -> int:
        return len(self.body.get("Resources", {}))

    @property
    def folder(self) -> str:
        """Where the template files sit, relative to an environment's folder."""
        if self.scope == "project":
            return f"../{PROJECT_FOLDER}/"
        return f"../{self.home}/" if self.home else ""


def _exports(body: dict[str, Any]) -> list[str]:
    return sorted(out["Export"]["Name"] for out in body.get("Outputs", {}).values() if "Export" in out)


def _parameters(body: dict[str, Any]) -> dict[str, dict[str, str]]:
    sources = body.get("Metadata", {}).get(SOURCES_METADATA, {})
    found: dict[str, dict[str, str]] = {}
    for name, spec in body.get("Parameters", {}).items():
        if name in sources:
            found[name] = {
                "stack": sources[name]["Stack"],
                "output": sources[name]["Output"],
                **({"region": sources[name]["Region"]} if "Region" in sources[name] else {}),
            }
        elif str(spec.get("Type", "")).startswith("AWS::SSM::Parameter::Value<") and "Default" in spec:
            found[name] = {"ssm": str(spec["Default"])}
        else:
            found[name] = {"from": "deployer", "description": spec.get("Description", "")}
    return found


def _imports(body: dict[str, Any]) -> list[str]:
    """The sorted export names ``body`` imports: read from its JSON text where the build has made
    it (a search of the text, instead of a walk of every value), else by walking the body."""
    text = made(body, "json")
    if text is None:
        return sorted(set(find_imports(body)))
    literals: set[str] = set()  # each name's JSON string, decoded once below
    for match in _IMPORT.finditer(text):
        start = text.rfind("\n", 0, match.start()) + 1
        if not text[start : match.start()].strip(" "):  # the key itself, not the end of a longer key
            literals.add(match[1])
    # A JSON string without a backslash is its text between the quotes (to_json escapes nothing else)
    return sorted({literal[1:-1] if "\\" not in literal else json.loads(literal) for literal in literals})


# A literal Fn::ImportValue in a template's JSON text (render.to_json: one key a line, and no line
# break inside a JSON string): the key, first on its line, and a string value, as find_imports
# yields them. The search starts at the literal key (a pattern starting at a line's start is
# tried at every character); inside a string every quote is escaped, so only a key ending with
# an escaped quote and the name (`"x \"Fn::ImportValue": ...`) could match there: the caller
# holds the match to the start of its line.
_IMPORT = re.compile(r'"Fn::ImportValue": ("(?:[^"\\]|\\.)*"),?$', re.MULTILINE)


def find_imports(node: Any) -> Iterator[str]:
    """Every literal name passed to Fn::ImportValue anywhere in a template."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Fn::ImportValue" and isinstance(value, str):
                yield value
            else:
                yield from find_imports(value)
    elif isinstance(node, list):
        for item in node:
            yield from find_imports(item)


def check_layer_order(layers: Sequence[LayerSpec]) -> None:
    """Each layer imports only from layers listed before it: the list is the deploy order."""
    seen: set[str] = set()
    for layer in layers:
        missing = [name for name in layer.imports_from if name not in seen]
        if missing:
            raise ValueError(f"layer {layer.name!r} imports from {missing}, which do not come before it")
        seen.add(layer.name)


def _stack(name: str, layer: str, region: str, template: Template, *, depends_on: list[str], scope: str) -> Stack:
    body = template_dict(template)
    return Stack(name, layer, region, body, depends_on, scope=scope)


# (environment's settings as JSON, layer, unit) -> the unit's template as data; set inside build_once()
_BUILT: ContextVar[dict[tuple[str, LayerSpec, str], dict[str, Any]] | None] = ContextVar("built", default=None)


@contextmanager
def build_once() -> Iterator[None]:
    """Within this block, ``build_stacks`` builds each environment's layer (each service's, for a
    per-service layer) once and hands the same template data out again when asked for it again.

    A build asks for an environment's stacks several times: for its own folder, for its DR pair's
    folder, for the deployer layer (the roles derive from the other layers' resource types) and
    for the infrastructure pipeline (every environment it deploys). Layers are pure functions of
    the settings (STYLE.md), so equal settings (compared as their JSON) give the same template.
    Each call still returns new ``Stack`` objects with their own ``depends_on`` lists
    (``prerequisites`` extends those); the template data is shared and must not be changed, and
    so are its YAML and JSON texts and its imports (``render.once``).
    Outside the block nothing is kept: a test that changes a layer's module between builds
    sees the change.
    """
    token = _BUILT.set({})
    try:
        with keep_derived():
            yield
    finally:
        _BUILT.reset(token)


def boundary_arn(env: Environment) -> Sub:
    """The ARN of ``env``'s permissions boundary policy (IAM ARN format ``arn:aws:iam::account:policy/name``)."""
    return Sub(
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/%s" % permissions_boundary_name(env.project, env.name)
    )


PROJECT_BOUNDARY = "project"  # {project}-project-boundary: "project" is no environment's name (reserved)


def project_boundary_arn(project: Project) -> Sub:
    """The ARN of the project's permissions boundary policy, which the registry stack (deployed
    first) creates and every role of the project's stacks carries."""
    return Sub(
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/%s"
        % permissions_boundary_name(project.name, PROJECT_BOUNDARY)
    )


def build_stacks(env: Environment, layers: Sequence[LayerSpec]) -> list[Stack]:
    """Every environment stack of ``env``, in deploy order."""
    check_layer_order(layers)
    built = _BUILT.get()
    settings = env.model_dump_json() if built is not None else ""
    stacks: list[Stack] = []
    names: dict[str, list[str]] = {}  # layer -> its stack names (several for a per-service layer)
    bucket: tuple[str, str] | None = None  # the template bucket's (stack, bucket name)
    for layer in layers:
        depends_on = [n for dependency in layer.imports_from for n in names[dependency]]
        names[layer.name] = []
        if layer.when is not None and not layer.when(env):
            continue
        region = layer.region(env) if layer.region else env.region
        units: list[tuple[str, tuple[Any, ...]]]
        if layer.per_service:
            units = [(f"{layer.name}-{service}", (env, service)) for service in sorted(env.services)]
        else:
            units = [(layer.name, (env,))]
        for unit, args in units:
            name = stack_name(env.project, env.name, unit)
            body = built.get((settings, layer, unit)) if built is not None else None
            if body is None:
                template = layer.build(*args)
                apply_tags(template, standard_tags(env.project, env.name, unit, env.tags))
                if layer.bounded:
                    apply_permissions_boundary(template, boundary_arn(env))
                body = template_dict(template)
                if built is not None:
                    built[(settings, layer, unit)] = body
            if layer.addon_role and len(args) == 2 and args[1] in env.addons.services:
                target = _addon_target(env, unit, region, bounded=layer.bounded)
                body = addons.merge_service(body, env.addons.services[args[1]], layer.addon_role, target)
            stacks.append(Stack(name, unit, region, body, list(depends_on), scope="environment"))
            names[layer.name].append(name)
            if layer.template_bucket is not None:
                bucket = (name, layer.template_bucket(env))
    extended = addons.extend(stacks, env.addons, partial(_addon_stack, env), partial(stack_name, env.project, env.name))
    return _through_template_bucket(extended, bucket)


def template_bytes(stack: Stack) -> int:
    """The size of the stack's larger template file (YAML or JSON, UTF-8), in bytes: what
    CloudFormation counts against its template size quotas (quotas.TEMPLATE_BODY_BYTES)."""
    return max(len(stack.json.encode()), len(stack.yaml.encode()))


def _through_template_bucket(stacks: list[Stack], bucket: tuple[str, str] | None) -> list[Stack]:
    """``stacks`` with the template bucket's stack kept only if a stack after it in its region is
    beyond a request body's 51,200 bytes; those name the bucket and are deployed after its stack.
    A stack before it or in another region keeps the request body (the gate's limits check says
    which is too big)."""
    if bucket is None:
        return stacks
    at = next(i for i, s in enumerate(stacks) if s.name == bucket[0])
    store = stacks[at]
    large = [s for s in stacks[at + 1 :] if s.region == store.region and template_bytes(s) > TEMPLATE_BODY_BYTES]
    if not large:
        return [*stacks[:at], *stacks[at + 1 :]]
    for stack in large:
        stack.upload_bucket = bucket[1]
        if store.name not in stack.depends_on:
            stack.depends_on.append(store.name)
    return stacks


def _addon_stack(env: Environment, addon: addons.AddonStack) -> Stack:
    """An add-on stack of ``env`` (``addons/<env>/stacks/<name>.yaml``): ``{project}-{env}-addon-<name>``."""
    unit = f"{addons.LAYER_PREFIX}{addon.name}"
    target = _addon_target(env, unit, env.region, bounded=True)
    return Stack(target.stack, unit, env.region, addons.stack_body(addon, target), [], scope="environment")


def _addon_target(env: Environment, unit: str, region: str, *, bounded: bool) -> addons.Target:
    return addons.Target(
        stack=stack_name(env.project, env.name, unit),
        project=env.project,
        environment=env.name,
        region=region,
        tags=standard_tags(env.project, env.name, unit, env.tags),
        boundary=boundary_arn(env).to_dict() if bounded else None,
    )


def build_project_stacks(project: Project, layers: Sequence[ProjectLayerSpec]) -> list[Stack]:
    """The project-wide stacks (one each), in deploy order, in the registry's region."""
    stacks = []
    names: dict[str, list[str]] = {}
    for layer in layers:
        depends_on = [n for dependency in layer.imports_from for n in names[dependency]]
        units: list[tuple[str, str, tuple[Any, ...]]]  # (unit, region, build arguments)
        if layer.when is not None and not layer.when(project):
            units = []
        elif layer.per_service:
            units = [(f"{layer.name}-{s}", project.region, (project, s)) for s in project.services]
        elif layer.regions is not None:
            units = [(f"{layer.name}-{r}", r, (project, r)) for r in layer.regions(project)]
        else:
            units = [(layer.name, project.region, (project,))]
        names[layer.name] = []
        for unit, region, args in units:
            template = layer.build(*args)
            apply_tags(template, standard_tags(project.name, PROJECT_ENVIRONMENT_TAG, unit, project.tags))
            # Every role of the project's stacks, as of an environment's, carries a boundary: the
            # project's, from the registry stack, which deploy.sh and DEPLOY.md deploy first.
            apply_permissions_boundary(template, project_boundary_arn(project))
            name = stack_name(project.name, None, unit)
            stack = _stack(name, unit, region, template, depends_on=depends_on, scope="project")
            if layer.upload_bucket is not None:
                stack.upload_bucket = layer.upload_bucket(project)
            stacks.append(stack)
            names[layer.name].append(name)
    return stacks


def _entry(position: int, stack: Stack) -> dict[str, Any]:
    upload = {"upload_bucket": stack.upload_bucket} if stack.upload_bucket else {}
    return upload | {
        "order": position,
        "name": stack.name,
        "scope": stack.scope,
        "layer": stack.layer,
        "region": stack.region,
        "templates": {"yaml": f"{stack.folder}{stack.layer}.yaml", "json": f"{stack.folder}{stack.layer}.json"},
        "depends_on": stack.depends_on,
        "parameters": stack.parameters,
        "outputs": sorted(stack.body.get("Outputs", {})),
        "exports": stack.exports,
        "imports": stack.imports,
    }


def prerequisites(
    stacks: Sequence[Stack],
    other: str,
    other_stacks: Sequence[Stack],
    needs: Sequence[tuple[str, str]],
    *,
    closure: bool,
) -> list[Stack]:
    """The stacks of another environment (``other``: a DR pair's other half) that ``stacks`` need
    first, in that environment's deploy order, each marked to be deployed from its own folder; each
    needing stack gets them in ``depends_on``.

    ``needs`` pairs (this environment's layer, the other's layer): e.g. a DR data stack needs the
    primary's data stack, whose global cluster it joins. With ``closure`` the other environment's
    stacks those need come too (a primary deploys before its DR environment, so the DR
    environment's stacks it needs must bring their own foundations); without, the other
    environment is taken as deployed already.
    """
    by_layer = {stack.layer: stack for stack in other_stacks}
    by_name = {stack.name: stack for stack in other_stacks}
    wanted: set[str] = set()

    def want(name: str) -> None:
        if name in wanted or name not in by_name:
            return
        wanted.add(name)
        if closure:
            for dependency in by_name[name].depends_on:
                want(dependency)

    for stack in stacks:
        for layer, other_layer in needs:
            if stack.layer == layer and other_layer in by_layer:
                source = by_layer[other_layer]
                if source.name not in stack.depends_on:
                    stack.depends_on.append(source.name)
                want(source.name)
    return [replace(s, home=other) for s in other_stacks if s.name in wanted]


def interleave(stacks: Sequence[Stack], external: Sequence[Stack]) -> list[Stack]:
    """This environment's stacks in order, each preceded by the external stacks (another
    environment's, in their own order) up to the last one it depends on, so a stack from elsewhere
    is listed just before it is first needed."""
    position = {stack.name: i for i, stack in enumerate(external)}
    ordered: list[Stack] = []
    placed = 0
    for stack in stacks:
        last = max((position[d] for d in stack.depends_on if d in position), default=-1)
        ordered.extend(external[placed : last + 1])
        placed = max(placed, last + 1)
        ordered.append(stack)
    return [*ordered, *external[placed:]]


def manifest(env: Environment, stacks: Sequence[Stack], project_stacks: Sequence[Stack] = ()) -> dict[str, Any]:
    """The deploy order of one environment: the project's stacks first (deployed once for all
    environments), then ``stacks``: its own, with any it needs from its DR pair just before them."""
    return {
        "project": env.project,
        "environment": env.name,
        "account_id": env.account_id,
        "region": env.region,
        "stacks": [_entry(i, s) for i, s in enumerate([*project_stacks, *stacks], start=1)],
    }


def project_manifest(project: Project, stacks: Sequence[Stack]) -> dict[str, Any]:
    return {
        "project": project.name,
        "environment": None,
        "account_id": project.account_id,
        "region": project.region,
        "stacks": [_entry(i, s) for i, s in enumerate(stacks, start=1)],
    }


def _template_files(stacks: Sequence[Stack]) -> dict[str, str]:
    files: dict[str, str] = {}
    for stack in stacks:
        files[f"{stack.layer}.yaml"] = stack.yaml
        files[f"{stack.layer}.json"] = stack.json
    return files


def environment_files(
    env: Environment,
    stacks: Sequence[Stack],
    project_stacks: Sequence[Stack] = (),
    external: Sequence[Stack] = (),
    blocked: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The files of ``output/<env>/``: each template as YAML and JSON, the manifest, and the deploy
    guide and script (DEPLOY.md, deploy.sh) derived from them. ``external`` are the stacks of the
    DR pair's other environment this one needs (see ``prerequisites``): listed, not written here."""
    files = _template_files(stacks)
    ordered = interleave(stacks, external)
    described = manifest(env, ordered, project_stacks)
    files["manifest.json"] = to_json(described)
    tags = {"Project": env.project, "Environment": env.name, "ManagedBy": MANAGED_BY}
    # The one hosted zone the settings name (a DR environment's dr.dns, the zone of its primary's origin
    # name): DEPLOY.md offers it for this environment's own origin name's record.
    dns = env.dr.dns if env.dr is not None else None
    zone = (dns.hosted_zone_id, f"dr.dns.hosted_zone_id of {env.name}") if dns is not None else None
    bodies = _bodies([*project_stacks, *ordered])
    # The project's stacks are in the registry's account: status.sh asks that account's folder about them.
    files.update(
        handover_files(
            described,
            bodies,
            env.name,
            tags,
            blocked=blocked,
            hosted_zone=zone,
            project_account=env.registry.account_id,
        )
    )
    return files


def project_files(
    project: Project, stacks: Sequence[Stack], blocked: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The files of ``output/project/``, with their own DEPLOY.md and deploy.sh."""
    files = _template_files(stacks)
    described = project_manifest(project, stacks)
    files["manifest.json"] = to_json(described)
    tags = {"Project": project.name, "Environment": PROJECT_ENVIRONMENT_TAG, "ManagedBy": MANAGED_BY}
    files.update(handover_files(described, _bodies(stacks), PROJECT_FOLDER, tags, blocked=blocked))
    return files


def _bodies(stacks: Sequence[Stack]) -> dict[str, dict[str, Any]]:
    return {stack.name: stack.body for stack in stacks}
