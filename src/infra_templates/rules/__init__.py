"""The project's cfn-lint rule pack: AWS's documented contracts that cfn-lint does not know.

One module per service, one rule class per contract, ids E9001-E9099 (errors: AWS refuses the
template or the resource does not work as written). Each rule's ``source_url`` is the AWS page the
contract comes from. cfn-lint loads every ``[A-Za-z1-9]*.py`` file of this folder as a standalone
module (``cfn-lint --append-rules src/infra_templates/rules/ template.yaml``), so the modules import
nothing from this package: what several share lives in a ``_``-prefixed file beside them
(``_intrinsics.py``, ``_zero_acu.py``), which cfn-lint does not take for a rule and each module
loads by its path. The gate passes this folder as
``append_rules`` (``infra_templates.checks.RULES_DIR``).
"""
