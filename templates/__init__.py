"""The platform's layers, in deploy order: each imports only from layers listed before it.

Project layers are deployed once for all environments, before any environment's stacks.
"""

from infra_templates.pipeline import LayerSpec, ProjectLayerSpec
from templates import keys, network, platform, registry, security, service

PROJECT_LAYERS: tuple[ProjectLayerSpec, ...] = (ProjectLayerSpec("registry", registry.build),)

LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("keys", keys.build),
    LayerSpec("network", network.build, imports_from=("keys",)),
    LayerSpec("security", security.build, imports_from=("network",)),
    LayerSpec("platform", platform.build, imports_from=("keys", "network", "security")),
    LayerSpec("svc", service.build, imports_from=("keys", "network", "security", "platform"), per_service=True),
)
