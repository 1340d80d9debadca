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
    standby_prerequisites,
)
from templates import (
    data,
    delivery,
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
    LayerSpec("edge-waf", edge_waf.build, region=edge_waf.region, when=edge_waf.needed),
    LayerSpec("edge", edge.build, imports_from=("keys", "platform", "edge-waf")),
    LayerSpec("monitoring", monitoring.build, imports_from=("keys", "network", "data", "platform", "edge")),
    LayerSpec("dashboard", monitoring.build_dashboard, imports_from=("data", "platform", "edge")),
    LayerSpec("edge-alarms", edge_alarms.build, region=edge_alarms.region, imports_from=("edge",)),
    LayerSpec(
        "svc",
        service.build,
        imports_from=("keys", "network", "security", "data", "platform", "edge", "monitoring"),
        per_service=True,
    ),
)

# What a DR environment's stacks need from its primary's first: (DR layer, primary layer). The DR
# database joins the global cluster the primary's data stack creates.
STANDBY_NEEDS: tuple[tuple[str, str], ...] = (("data", "data"),)


def environment_output(
    env: Environment,
    environments: Sequence[Environment],
    project_stacks: Sequence[Stack],
    layers: Sequence[LayerSpec] = LAYERS,
) -> tuple[list[Stack], dict[str, str]]:
    """One environment's stacks and the files of its output folder, DR pieces included."""
    stacks = build_stacks(env, layers)
    needed: list[Stack] = []
    extra: dict[str, str] = {}
    primary = next((e for e in environments if env.dr is not None and e.name == env.dr.protects), None)
    if primary is not None:
        needed = standby_prerequisites(stacks, primary.name, build_stacks(primary, layers), STANDBY_NEEDS)
        extra["RUNBOOK.md"] = runbook.build(env, primary, stacks)
    files = environment_files(env, stacks, [*project_stacks, *needed])
    files.update(extra)
    return stacks, files
