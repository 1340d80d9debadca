"""The platform's layers, in deploy order: each imports only from layers listed before it."""

from infra_templates.pipeline import LayerSpec
from templates import keys, network

LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("keys", keys.build),
    LayerSpec("network", network.build, imports_from=("keys",)),
)
