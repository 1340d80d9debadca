"""The platform's layers, in deploy order: each imports only from layers listed before it.

Project layers are deployed once for all environments, before any environment's stacks: the
registry (its key, a repository per service, and, with a DR environment in another region, the
replicas' key and creation template there and then the replication configuration), then delivery;
the last, ``delivery-infrastructure``, is the infrastructure's own pipeline, built from every
environment's stacks (``infrastructure_plan``). Each environment starts with its ``deployer``
layer: the roles that pipeline deploys the rest with, derived from the resource types of the
layers after it.
"""

from collections.abc import Mapping, Sequence
from functools import partial

from troposphere import Template

from infra_templates.config import Environment, Project, link
from infra_templates.naming import artifact_bucket_name
from infra_templates.pipeline import (
    LayerSpec,
    ProjectLayerSpec,
    Stack,
    build_stacks,
    environment_files,
    interleave,
    prerequisites,
)
from templates import (
    assets_replica,
    connect,
    data,
    delivery,
    deployer,
    dns,
    edge,
    edge_alarms,
    edge_waf,
    infrastructure,
    keys,
    monitoring,
    network,
    origin_verify,
    platform,
    registry,
    runbook,
    security,
    service,
    template_bucket,
)


def _shared(project: Project) -> Template:
    return delivery.build_shared(project, infrastructure_plan(project).deployers_in())


def _artifacts(project: Project, region: str) -> Template:
    return delivery.build_region(project, region, infrastructure_plan(project).deployers_in())


def _artifact_regions(project: Project) -> list[str]:
    """Every region a pipeline acts in besides the registry's: the releases' environments and every
    region the infrastructure pipeline deploys a stack to (us-east-1 for the edge stacks)."""
    return sorted({*delivery.release_regions(project), *infrastructure_plan(project).regions} - {project.region})


def _infrastructure(project: Project) -> Template:
    return infrastructure.build(project, infrastructure_plan(project))


PROJECT_LAYERS: tuple[ProjectLayerSpec, ...] = (
    ProjectLayerSpec("registry", registry.build),
    ProjectLayerSpec("registry", registry.build_service, imports_from=("registry",), per_service=True),
    # ECR replicates the images to each DR region: the creation template there first, so the first
    # replicated image already lands in a repository with the right key, tags, lifecycle and policy.
    ProjectLayerSpec(registry.REPLICA_LAYER, registry.build_replica, regions=registry.replica_regions),
    ProjectLayerSpec(
        registry.REPLICATION_LAYER,
        registry.build_replication,
        imports_from=(registry.REPLICA_LAYER,),  # no export crosses regions: the order alone
        when=registry.replicates,
    ),
    ProjectLayerSpec("delivery", _shared),
    ProjectLayerSpec("delivery-artifacts", _artifacts, regions=_artifact_regions),
    ProjectLayerSpec("delivery", delivery.build_service, imports_from=("delivery",), per_service=True),
    ProjectLayerSpec(
        infrastructure.LAYER,
        _infrastructure,
        imports_from=("delivery", "delivery-artifacts"),
        upload_bucket=lambda project: artifact_bucket_name(project.name, project.account_id, project.region),
    ),
)

# What the environment runs, in deploy order; the deployer layer (first) is derived from them.
RUNNING: tuple[LayerSpec, ...] = (
    LayerSpec("keys", keys.build),
    LayerSpec("network", network.build, imports_from=("keys",)),
    # The secret header CloudFront sends and the load balancer's rules require (read by edge and svc).
    LayerSpec(origin_verify.LAYER, origin_verify.build, imports_from=("keys",), when=origin_verify.owns),
    LayerSpec("security", security.build, imports_from=("keys", "network")),
    LayerSpec("data", data.build, imports_from=("keys", "network", "security")),
    LayerSpec("platform", platform.build, imports_from=("keys", "network", "security")),
    # Kept only when a later stack's template is beyond a request's 51,200 bytes: deployed through it.
    LayerSpec(
        template_bucket.LAYER,
        template_bucket.build,
        imports_from=("platform",),
        template_bucket=template_bucket.bucket_name,
    ),
    LayerSpec("assets-replica", assets_replica.build, imports_from=("keys", "platform"), when=assets_replica.needed),
    LayerSpec("edge-waf", edge_waf.build, region=edge_waf.region, when=edge_waf.needed),
    LayerSpec("edge", edge.build, imports_from=("keys", "platform", "assets-replica", "edge-waf", origin_verify.LAYER)),
    LayerSpec(
        "monitoring",
        monitoring.build,
        imports_from=("keys", "network", "data", "platform", "edge", origin_verify.LAYER),
    ),
    LayerSpec(
        "dashboard",
        monitoring.build_dashboard,
        imports_from=("data", "platform", "edge"),
        when=lambda env: env.monitoring.dashboard,  # a cost lever ("What it costs")
    ),
    LayerSpec(
        "svc",
        service.build,
        imports_from=(
            "keys",
            "network",
            "security",
            "data",
            "platform",
            "assets-replica",
            "edge",
            "monitoring",
            origin_verify.LAYER,
        ),
        per_service=True,
        addon_role="TaskRole",  # addons/<env>/services/<service>.yaml: TaskRoleStatements join the task role
    ),
    # Who may call whom (Service Connect): rules between the service stacks' own groups.
    LayerSpec("connect", connect.build, imports_from=("svc",), when=connect.needed),
    # After the services: the primary's Route 53 check monitors its API's target-group alarms.
    LayerSpec("dns", dns.build, imports_from=("platform", "svc"), when=dns.needed),
    LayerSpec("edge-alarms", edge_alarms.build, region=edge_alarms.region, imports_from=("dns", "edge")),
)
# The deployer's roles come first: the first hand-run deploy.sh creates them, then the
# infrastructure pipeline deploys the rest with them.
LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("deployer", partial(deployer.build, layers=RUNNING), bounded=False),
    *RUNNING,
)

# What a DR environment's stacks need from its primary's: (DR layer, primary layer). The DR
# database joins the global cluster the primary's data stack creates; the DR edge lets the
# primary's distribution (fail over and) read its replica bucket. The primary deploys first, so
# these are its stacks alone, already deployed.
# The DR edge and services read the primary's origin-verify secret, replicated into their region.
STANDBY_NEEDS: tuple[tuple[str, str], ...] = (("data", "data"), ("edge", "edge"), ("edge", origin_verify.LAYER))
# What a primary's stacks need from the DR environment protecting it: (primary layer, DR layer).
# The primary's database secret replicates under the DR data key; its edge replicates its assets
# into the DR replica bucket and fails over to it; its dns stack points the secondary record at
# the DR load balancer. They come with the DR stacks
# they stand on (keys, network, security, platform).
PROTECTED_NEEDS: tuple[tuple[str, str], ...] = (
    ("data", "keys"),
    (origin_verify.LAYER, "keys"),  # its secret replicates under the DR data key
    ("edge", "keys"),
    ("edge", "assets-replica"),
    ("dns", "platform"),
    ("monitoring", "assets-replica"),
)


def paired_stacks(
    env: Environment, environments: Sequence[Environment], layers: Sequence[LayerSpec] = LAYERS
) -> tuple[list[Stack], list[Stack]]:
    """One environment's own stacks, and the stacks of its DR pair's other environment it needs
    (marked to be deployed from their folder), each side's ``depends_on`` naming the other's."""
    stacks = build_stacks(env, layers)
    by_name = {e.name: e for e in environments}
    if env.dr is not None and env.dr.protects in by_name:
        primary = by_name[env.dr.protects]
        primary_stacks = build_stacks(primary, layers)
        # The primary's stacks as the primary's own manifest describes them (what they need here).
        prerequisites(primary_stacks, env.name, stacks, PROTECTED_NEEDS, closure=True)
        return stacks, prerequisites(stacks, primary.name, primary_stacks, STANDBY_NEEDS, closure=False)
    if env.standby is not None and env.standby.environment in by_name:
        standby = by_name[env.standby.environment]
        return stacks, prerequisites(stacks, standby.name, build_stacks(standby, layers), PROTECTED_NEEDS, closure=True)
    return stacks, []


def environment_output(
    env: Environment,
    environments: Sequence[Environment],
    project_stacks: Sequence[Stack],
    layers: Sequence[LayerSpec] = LAYERS,
    blocked: Mapping[str, str] | None = None,
) -> tuple[list[Stack], dict[str, str]]:
    """One environment's stacks and the files of its output folder, with the stacks of its DR pair
    it needs listed where they are needed (and deployed from their own folder). ``blocked``: the
    stacks its deploy.sh refuses without ``ALLOW_REPLACE``, with why (``generate.py``'s ``_blocked``)."""
    stacks, external = paired_stacks(env, environments, layers)
    files = environment_files(env, stacks, project_stacks, external, blocked)
    primary = next((e for e in environments if env.dr is not None and e.name == env.dr.protects), None)
    if primary is not None:
        files["RUNBOOK.md"] = runbook.build(env, primary, stacks)
    return stacks, files


_plans: dict[int, tuple[Project, infrastructure.Plan]] = {}


def infrastructure_plan(project: Project) -> infrastructure.Plan:
    """What the infrastructure pipeline deploys: each environment of ``delivery.stages`` (of those
    loaded), its manifest's own stacks and the prerequisites it lists from other folders, in order."""
    cached = _plans.get(id(project))
    if cached is not None and cached[0] is project:
        return cached[1]
    everyone = link(project.environments)
    by_name = {env.name: env for env in everyone}
    deployments = []
    for name in project.delivery.stages:
        env = by_name.get(name)
        if env is None:
            continue
        stacks, external = paired_stacks(env, everyone, RUNNING)
        deployments.append(infrastructure.Deployment(env, interleave(stacks, external)))
    plan = infrastructure.Plan(deployments, by_name)
    _plans.clear()
    _plans[id(project)] = (project, plan)
    return plan
