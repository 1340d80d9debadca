"""infra-templates toolkit: settings, naming, secure builders, rendering and the gate.

It knows nothing of the platform's layers: those live in the top-level ``templates`` package.
"""

MANAGED_BY = "infra-templates"
