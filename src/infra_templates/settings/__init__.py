"""The settings models, one module per concern; import them from :mod:`infra_templates.config`."""
