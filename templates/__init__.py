"""The platform's layers, in deploy order: each imports only from layers listed before it.

Project layers are deployed once for all environments, before any environment's stacks.
"""

from infra_templates.pipeline import LayerSpec, ProjectLayerSpec
from templates import data, delivery, edge, edge_waf, keys, network, platform, registry, security, service

PROJECT_LAYERS: tuple[ProjectLayerSpec, ...] = (
    ProjectLayerSpec("registry", registry.build),
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
    LayerSpec(
        "svc",
        service.build,
        imports_from=("keys", "network", "security", "data", "platform", "edge"),
        per_service=True,
    ),
)
