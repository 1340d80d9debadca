"""The platform's layers, in deploy order: each imports only from layers listed before it.

Project layers are deployed once for all environments, before any environment's stacks.
"""

from infra_templates.pipeline import LayerSpec, ProjectLayerSpec
from templates import (
    data,
    edge,
    edge_alarms,
    edge_waf,
    keys,
    monitoring,
    network,
    platform,
    registry,
    security,
    service,
)

PROJECT_LAYERS: tuple[ProjectLayerSpec, ...] = (ProjectLayerSpec("registry", registry.build),)

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
