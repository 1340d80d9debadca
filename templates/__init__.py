"""The platform's layers, in deploy order: each imports only from layers listed before it.

Project layers are deployed once for all environments, before any environment's stacks: the
registry (its key, a repository per service, and, with a DR environment in another region, the
replicas' key and creation template there and then the replication configuration), then delivery.
"""

from collections.abc import Sequence

from infra_templates.config import Environment
from infra_templates.pipeline import (
    LayerSpec,
    ProjectLayerSpec,
    Stack,
    build_stacks,
    environment_files,
    prerequisites,
)
from templates import (
    assets_replica,
    data,
    delivery,
    dns,
    edge,
    edge_alarms,
    edge_waf,
    keys,
    monitoring,
    network,
    platform,
    registry,
    runbook,
    security,
    service,
)

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
    ProjectLayerSpec("delivery", delivery.build_shared),
    ProjectLayerSpec("delivery-artifacts", delivery.build_region, regions=delivery.other_regions),
    ProjectLayerSpec("delivery", delivery.build_service, imports_from=("delivery",), per_service=True),
)

LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("keys", keys.build),
    LayerSpec("network", network.build, imports_from=("keys",)),
    LayerSpec("security", security.build, imports_from=("network",)),
    LayerSpec("data", data.build, imports_from=("keys", "network", "security")),
    LayerSpec("platform", platform.build, imports_from=("keys", "network", "security")),
    LayerSpec("dns", dns.build, imports_from=("platform",), when=dns.needed),
    LayerSpec("assets-replica", assets_replica.build, imports_from=("keys", "platform"), when=assets_replica.needed),
    LayerSpec("edge-waf", edge_waf.build, region=edge_waf.region, when=edge_waf.needed),
    LayerSpec("edge", edge.build, imports_from=("keys", "platform", "assets-replica", "edge-waf")),
    LayerSpec("monitoring", monitoring.build, imports_from=("keys", "network", "data", "platform", "edge")),
    LayerSpec("dashboard", monitoring.build_dashboard, imports_from=("data", "platform", "edge")),
    LayerSpec("edge-alarms", edge_alarms.build, region=edge_alarms.region, imports_from=("dns", "edge")),
    LayerSpec(
        "svc",
        service.build,
        imports_from=("keys", "network", "security", "data", "platform", "assets-replica", "edge", "monitoring"),
        per_service=True,
    ),
)

# What a DR environment's stacks need from its primary's: (DR layer, primary layer). The DR
# database joins the global cluster the primary's data stack creates; the DR edge lets the
# primary's distribution (fail over and) read its replica bucket. The primary deploys first, so
# these are its stacks alone, already deployed.
STANDBY_NEEDS: tuple[tuple[str, str], ...] = (("data", "data"), ("edge", "edge"))
# What a primary's stacks need from the DR environment protecting it: (primary layer, DR layer).
# The primary's database secret replicates under the DR data key; its edge replicates its assets
# into the DR replica bucket and fails over to it; its dns stack points the secondary record at
# the DR load balancer. They come with the DR stacks
# they stand on (keys, network, security, platform).
PROTECTED_NEEDS: tuple[tuple[str, str], ...] = (
    ("data", "keys"),
    ("edge", "keys"),
    ("edge", "assets-replica"),
    ("dns", "platform"),
    ("monitoring", "assets-replica"),
)


def environment_output(
    env: Environment,
    environments: Sequence[Environment],
    project_stacks: Sequence[Stack],
    layers: Sequence[LayerSpec] = LAYERS,
) -> tuple[list[Stack], dict[str, str]]:
    """One environment's stacks and the files of its output folder, with the stacks of its DR pair
    it needs listed where they are needed (and deployed from their own folder)."""
    stacks = build_stacks(env, layers)
    external: list[Stack] = []
    extra: dict[str, str] = {}
    by_name = {e.name: e for e in environments}
    if env.dr is not None and env.dr.protects in by_name:
        primary = by_name[env.dr.protects]
        primary_stacks = build_stacks(primary, layers)
        # The primary's stacks as the primary's own manifest describes them (what they need here).
        prerequisites(primary_stacks, env.name, stacks, PROTECTED_NEEDS, closure=True)
        external = prerequisites(stacks, primary.name, primary_stacks, STANDBY_NEEDS, closure=False)
        extra["RUNBOOK.md"] = runbook.build(env, primary, stacks)
    elif env.standby is not None and env.standby.environment in by_name:
        standby = by_name[env.standby.environment]
        external = prerequisites(stacks, standby.name, build_stacks(standby, layers), PROTECTED_NEEDS, closure=True)
    files = environment_files(env, stacks, project_stacks, external)
    files.update(extra)
    return stacks, files
