"""The project: what all environments share, checked across them (aliases, shared fields, DR pairs)."""

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
)

from infra_templates.addons import unknown_environments
from infra_templates.settings.common import DEFAULTS_FILE, ENVIRONMENT_NAME, HOST_NAME, SettingsError, did_you_mean
from infra_templates.settings.delivery import Delivery
from infra_templates.settings.dr import Standby
from infra_templates.settings.environment import Environment
from infra_templates.settings.loading import (
    _dotted,
    _lookup,
    _misnamed,
    _read_mapping,
    _show,
    _shown,
    available_environments,
    deep_merge,
    load_environment,
    merge_inherited,
    read_once,
)
from infra_templates.settings.platform import Registry


@dataclass(frozen=True)
class Project:
    """What the environments share, for project-wide stacks (the image registry)."""

    name: str
    registry: Registry
    environments: tuple[Environment, ...]

    @property
    def account_id(self) -> str:
        return self.registry.account_id

    @property
    def region(self) -> str:
        return self.registry.region

    @property
    def services(self) -> list[str]:
        """Every service of any environment: each gets its repository."""
        return sorted({name for env in self.environments for name in env.services})

    @property
    def delivery(self) -> Delivery:
        return self.environments[0].delivery

    @property
    def accounts(self) -> list[str]:
        """The accounts that run the environments (and pull images)."""
        return sorted({env.account_id for env in self.environments})

    @property
    def tags(self) -> dict[str, str]:
        """The extra tags every environment agrees on."""
        first, *rest = self.environments
        return {k: v for k, v in first.tags.items() if all(e.tags.get(k) == v for e in rest)}


def project_of(environments: Sequence[Environment], folder: Path) -> Project:
    """The project the environments describe; they must agree on its name and registry."""
    if not environments:
        raise SettingsError([f"{_show(folder)}: no environment files; add one such as dev.yaml"])
    first = environments[0]
    problems = [
        line for field in ("project", "registry", "delivery") for line in _shared_problems(environments, field, folder)
    ]
    problems.extend(_dr_problems(environments, folder))
    names = available_environments(folder)
    for index, stage in enumerate(first.delivery.stages):
        if stage not in names:
            problems.append(
                f"{_show(folder / DEFAULTS_FILE)}: delivery.stages[{index}] = {_shown(stage)}: is not an environment"
                f"{did_you_mean(stage, names)}; environments are {', '.join(names)}"
            )
    problems.extend(_ownership_problems(environments, folder))
    if problems:
        raise SettingsError(problems)
    return Project(first.project, first.registry, tuple(environments))


def _owned_names(name: str, folder: Path) -> Any:
    """What a refused environment's files say it owns, for the rules across environments
    (:func:`_ownership_problems`): its name, account, region, VPC range, origin name, aliases, DR
    pairing and SES sender, each where the files give it in a form its own check accepts (else left
    out of the rule that reads it), so a mistake elsewhere in the file does not hide a range or a name
    copied from another environment until a second run. None when the files cannot be read."""
    from types import SimpleNamespace  # noqa: PLC0415 - only when a file is refused

    try:
        defaults = _read_mapping(folder / DEFAULTS_FILE) if (folder / DEFAULTS_FILE).is_file() else {}
        raw = deep_merge(defaults, _read_mapping(folder / f"{name}.yaml"))
    except SettingsError:
        return None

    def at(*path: str) -> Any:
        return _lookup(raw, path)

    try:
        cidr = ipaddress.ip_network(at("network", "cidr")) if isinstance(at("network", "cidr"), str) else None
    except ValueError:
        cidr = None
    origin, aliases, sender = at("edge", "origin_domain"), at("edge", "aliases"), at("monitoring", "ses_email")
    host = re.compile(HOST_NAME)
    return SimpleNamespace(
        name=name,
        account_id=str(at("account_id")),
        region=str(at("region")),
        network=SimpleNamespace(cidr=cidr),
        edge=SimpleNamespace(
            origin_domain=origin if isinstance(origin, str) and host.fullmatch(origin) else None,
            aliases=[a for a in aliases if isinstance(a, str) and host.fullmatch(a)]
            if isinstance(aliases, list)
            else [],
        ),
        dr=SimpleNamespace(protects=at("dr", "protects"), dns=at("dr", "dns")) if isinstance(at("dr"), dict) else None,
        monitoring=SimpleNamespace(
            ses_email=SimpleNamespace(
                enabled=isinstance(sender, dict) and sender.get("enabled") is True,
                sender=sender.get("sender")
                if isinstance(sender, dict) and isinstance(sender.get("sender"), str)
                else None,
            )
        ),
    )


def _ownership_problems(environments: Sequence[Environment], folder: Path) -> list[str]:
    """What two environments would both own (a DNS name, a VPC range, an SES identity): pairwise
    rules, so they hold of any subset of the environments (load_settings runs them on those that
    loaded when another file is refused, so a copied name is reported in the same run)."""
    return [
        *_alias_problems(environments, folder),
        *_origin_domain_problems(environments, folder),
        *_cidr_problems(environments, folder),
        *_ses_identity_problems(environments, folder),
    ]


def _alias_problems(environments: Sequence[Environment], folder: Path) -> list[str]:
    """A host name is the alias of one CloudFront distribution only ("CNAMEAlreadyExists": an
    alternate domain name belongs to one distribution; CloudFront developer guide, "Use custom URLs
    by adding alternate domain names (CNAMEs)"); two environments naming it would fail the second deploy."""
    owner: dict[str, str] = {}
    problems = []
    for env in environments:
        for index, alias in enumerate(env.edge.aliases):
            if alias in owner:
                problems.append(
                    f"{_show(folder / (env.name + '.yaml'))}: edge.aliases[{index}] = {_shown(alias)}: is also "
                    f"{owner[alias]}'s alias ({_show(folder / (owner[alias] + '.yaml'))}); a host name is the alias of "
                    "one CloudFront distribution only: give the environment that does not serve it yet another"
                )
            else:
                owner[alias] = env.name
    return problems


def _origin_domain_problems(environments: Sequence[Environment], folder: Path) -> list[str]:
    """Every DNS name an environment's stacks own or point is one environment's: ``edge.origin_domain``
    names the environment's own load balancer (DEPLOY.md has the user point it there, and a DR
    primary's ``dns`` stack holds it as Route 53 failover records), so two environments naming it
    would send one's CloudFront traffic to the other's load balancer, and the second's hand-over would
    re-point the first's name. A DR pair shares no name: the primary's origin name fails over to the
    DR load balancer through the primary's ``dns`` stack (or the runbook, by hand), while the DR
    environment's own distribution reaches its load balancer by its own name (templates/dns.py).

    An origin name must not be a viewer alias (``edge.aliases``) of any environment either: the alias
    resolves to a CloudFront distribution (Route 53 Developer Guide, "Routing traffic to an Amazon
    CloudFront distribution by using your domain name"), so CloudFront would send its origin requests
    to a distribution, its own (a loop) or another environment's, instead of a load balancer
    (CloudFront Developer Guide, "Use custom URLs by adding alternate domain names (CNAMEs)" and
    "Origin settings", Origin domain)."""
    problems = []
    aliases = {alias: (env, index) for env in reversed(environments) for index, alias in enumerate(env.edge.aliases)}
    by_origin: dict[str, list[Environment]] = {}
    named = [e for e in environments if e.edge.origin_domain is not None]  # a refused file's bad name: none
    for env in named:
        by_origin.setdefault(env.edge.origin_domain, []).append(env)
    for env in named:
        name = env.edge.origin_domain
        where = f"{_show(folder / (env.name + '.yaml'))}: edge.origin_domain = {_shown(name)}"
        for other in by_origin[name]:
            if other is env:
                continue
            pair = (env.dr is not None and env.dr.protects == other.name) or (
                other.dr is not None and other.dr.protects == env.name
            )
            why = (
                f"a DR pair shares no name: {other.name if env.dr else env.name}'s origin name fails over to "
                f"{env.name if env.dr else other.name}'s load balancer through Route 53 records (dr.dns) or the "
                "runbook, and each distribution reaches its own load balancer by its own name"
                if pair
                else "an origin name is the DNS name of one environment's load balancer: DEPLOY.md of each would "
                "point it at its own, taking the other's web routes"
            )
            failover = any(e.dr is not None and e.dr.protects == other.name and e.dr.dns for e in environments)
            held = f", which {other.name}'s dns stack holds as Route 53 failover records" if failover else ""
            problems.append(
                f"{where}: is also {other.name}'s edge.origin_domain ({_show(folder / (other.name + '.yaml'))}"
                f"{held}); {why}; give the environment not deployed yet its own (such as origin.<environment>.<domain>)"
            )
        if name in aliases:
            owner, index = aliases[name]
            whose = (
                f"this environment's own viewer alias (edge.aliases[{index}]): CloudFront would send its origin "
                "requests to itself"
                if owner is env
                else f"{owner.name}'s viewer alias (edge.aliases[{index}] in {_show(folder / (owner.name + '.yaml'))}):"
                f" CloudFront would send {env.name}'s origin requests to {owner.name}'s distribution"
            )
            problems.append(
                f"{where}: is {whose}; the origin name must resolve to this environment's load balancer, not to a "
                "CloudFront distribution"
            )
    return problems


def _cidr_problems(environments: Sequence[Environment], folder: Path) -> list[str]:
    """No two environments' VPCs overlap (``network.cidr``): a VPC peering connection between VPCs
    with overlapping IPv4 CIDR blocks fails ("Ensure that the VPCs do not have overlapping IPv4 CIDR
    blocks. If they overlap, the status of the VPC peering connection immediately goes to failed":
    Amazon VPC Peering Guide, "Create a VPC peering connection",
    https://docs.aws.amazon.com/vpc/latest/peering/create-vpc-peering-connection.html), and a route
    to an overlapping range cannot be told from the VPC's own local route. A DR pair is peered (or
    joined by a transit gateway) to replicate; any two environments may be connected later."""
    problems = []
    ranged = [e for e in environments if e.network.cidr is not None]  # a refused file's unparsable range: none
    for index, env in enumerate(ranged):
        for other in ranged[:index]:
            if not env.network.cidr.overlaps(other.network.cidr):
                continue
            pair = (env.dr is not None and env.dr.protects == other.name) or (
                other.dr is not None and other.dr.protects == env.name
            )
            why = (
                "a DR pair's VPCs are peered, and AWS fails a VPC peering connection between VPCs whose IPv4 "
                "CIDR blocks overlap (Amazon VPC Peering Guide, 'Create a VPC peering connection')"
                if pair
                else "every environment has its own range, so that any two can be peered or joined to a transit "
                "gateway (AWS fails a VPC peering connection between overlapping IPv4 CIDR blocks: Amazon VPC "
                "Peering Guide, 'Create a VPC peering connection')"
            )
            problems.append(
                f"{_show(folder / (env.name + '.yaml'))}: network.cidr = {_shown(str(env.network.cidr))}: overlaps "
                f"{other.name}'s network.cidr {other.network.cidr} ({_show(folder / (other.name + '.yaml'))}); {why}; "
                "give the one not deployed yet a range no other environment uses, with network.subnets inside it "
                "(a deployed VPC's new range replaces the VPC)"
            )
    return problems


def _ses_identity_problems(environments: Sequence[Environment], folder: Path) -> list[str]:
    """One SES identity per address in an account and region: the monitoring stack of each
    environment with ``monitoring.ses_email`` creates ``AWS::SES::EmailIdentity`` for its sender
    (templates/monitoring.py), and an identity belongs to the account in one AWS Region ("Adds an
    email address to the list of identities for your Amazon SES account in the current AWS Region":
    SES API Reference, VerifyEmailIdentity), so a second stack creating the same one fails
    ("Resource of type 'AWS::SES::EmailIdentity' with identifier ... already exists":
    widdix/mastodon-on-aws issue 27). prod and dr share an account but not a region: no clash."""
    owner: dict[tuple[str, str, str], Environment] = {}
    problems = []
    for env in environments:
        mail = env.monitoring.ses_email
        if not mail.enabled or mail.sender is None:
            continue
        key = (env.account_id, env.region, mail.sender.lower())
        first = owner.setdefault(key, env)
        if first is not env:
            problems.append(
                f"{_show(folder / (env.name + '.yaml'))}: monitoring.ses_email.sender = {_shown(mail.sender)}: is "
                f"also {first.name}'s, in the same account ({env.account_id}) and region ({env.region}); each "
                "environment's monitoring stack creates the SES identity of its sender, and an account holds one "
                "per address in a region, so the second stack would fail: give this environment another sender"
            )
    return problems


def _shared_problems(environments: Sequence[Environment], field: str, folder: Path) -> list[str]:
    """A setting every environment must share, set differently by some: each line names the file
    that differs from what most environments say (a tie: from the first environment in order), the
    field path and its value there, and the value the others have."""
    by_value: dict[str, list[Environment]] = {}
    for env in environments:
        by_value.setdefault(getattr(env, field).model_dump_json() if field != "project" else env.project, []).append(
            env
        )
    if len(by_value) < 2:
        return []
    common = max(by_value.values(), key=len)  # max keeps the first of equals: the first environment's group
    reference = common[0]
    others = ", ".join(e.name for e in common)
    problems = []
    for env in environments:
        if env in common:
            continue
        for path, value, expected in _differences(getattr(env, field), getattr(reference, field), (field,)):
            problems.append(
                f"{_show(folder / (env.name + '.yaml'))}: {_dotted(path)} = {_shown(value)}: differs from "
                f"{_shown(expected)} in {others}; every environment shares one {field} (set it in "
                f"{DEFAULTS_FILE} only)"
            )
    return problems


def _differences(a: Any, b: Any, path: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], Any, Any]]:
    """The leaves where ``a`` and ``b`` differ: (path, value in ``a``, value in ``b``)."""
    if isinstance(a, BaseModel) and type(a) is type(b):
        return [d for key in type(a).model_fields for d in _differences(getattr(a, key), getattr(b, key), (*path, key))]
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted({*a, *b}, key=str) for d in _differences(a.get(key), b.get(key), (*path, key))]
    return [] if a == b else [(path, a, b)]


def _dr_problems(environments: Sequence[Environment], folder: Path) -> list[str]:
    """A DR environment must pair with its primary the way an Aurora global database allows."""
    by_name = {env.name: env for env in environments}
    problems = []
    for env in environments:
        if env.dr is None:
            continue
        where = f"{_show(folder / (env.name + '.yaml'))}: dr.protects = {env.dr.protects!r}"
        primary = by_name.get(env.dr.protects)
        if primary is None or primary.dr is not None:
            names = ", ".join(sorted(n for n, e in by_name.items() if e.dr is None and n != env.name))
            problems.append(f"{where}: is not an environment it can protect; use one of {names}")
            continue
        checks = [
            (
                primary.region != env.region,
                f"region: is {env.region}, the same as {primary.name}'s; a DR copy runs in another region",
            ),
            (
                primary.account_id == env.account_id,
                f"account_id: differs from {primary.name}'s; an Aurora global database spans one account",
            ),
            (
                (primary.database.engine, primary.database.engine_version)
                == (env.database.engine, env.database.engine_version),
                f"database.engine_version: must equal {primary.name}'s ({primary.database.engine} "
                f"{primary.database.engine_version}); a global database runs one version",
            ),
            (
                # The DR vault's lock refuses a copy kept shorter than its minimum (AWS Backup Vault Lock).
                not env.production
                or primary.database.backup_plan_retention_days >= env.database.backup_plan_retention_days,
                f"database.backup_plan_retention_days: is {env.database.backup_plan_retention_days}, the minimum "
                f"its locked vault keeps, but {primary.name}'s backups are copied here for "
                f"{primary.database.backup_plan_retention_days} days; use at most that",
            ),
            (
                # One origin-verify secret for the pair, the primary's (templates/origin_verify.py):
                # both distributions reach both load balancers once the API's name fails over.
                primary.platform.ingress == env.platform.ingress,
                f"platform.ingress: is {env.platform.ingress!r}, {primary.name}'s is "
                f"{primary.platform.ingress!r}; a DR pair shares its origin-verify header (both "
                "distributions reach both load balancers), so both must be the same",
            ),
        ]
        problems.extend(f"{_show(folder / (env.name + '.yaml'))}: {message}" for ok, message in checks if not ok)
        if primary.database.password == "managed":
            problems.append(
                f"{_show(folder / (primary.name + '.yaml'))}: database.password = 'managed': AWS does not allow an "
                f"RDS-managed password on a global database member, and {env.name} protects {primary.name}; "
                "set database.password: generated"
            )
    return problems


def link(environments: Sequence[Environment]) -> list[Environment]:
    """The environments, each primary told which DR environment stands by for it (``standby``)."""
    linked = []
    for env in environments:
        guard = next((e for e in environments if e.dr is not None and e.dr.protects == env.name), None)
        standby = (
            None
            if guard is None or guard.dr is None
            else Standby(environment=guard.name, region=guard.region, dns=guard.dr.dns)
        )
        linked.append(env.model_copy(update={"standby": standby}) if standby else env)
    return linked


def primary_of(environment: Environment, environments: Sequence[Environment]) -> Environment | None:
    """The environment a DR environment protects."""
    if environment.dr is None:
        return None
    return next((e for e in environments if e.name == environment.dr.protects), None)


def _file_name_hint(name: str, environments: Sequence[str]) -> str:
    """``"; did you mean 'dev'?"`` for ``--env dev.yaml`` (a file's name where its environment's is
    meant); ``--env dev,prod``: each with its own --env; else ``""``."""
    if "," in name:
        return f"; give each environment its own --env (--env {' --env '.join(n.strip() for n in name.split(','))})"
    stem = Path(name).name.removesuffix(".yaml").removesuffix(".yml")
    return f"; did you mean {stem!r}?" if stem != name and stem in environments else ""


RESERVED_MEANINGS = {
    "defaults": "names defaults.yaml, the settings every environment shares",
    "project": "names the folder of the project-wide stacks (output/project/), which a build without --env writes",
    "delivery": "names the folder of the services' release files (output/delivery/), which a build without --env "
    "writes",
}
"""What each of settings.common.RESERVED_ENVIRONMENT_NAMES is, for a user who gives it to --env."""


def load_settings(
    folder: Path, names: Sequence[str] | None = None
) -> tuple[list[Environment], Project, list[Environment]]:
    """The named environments (default: all), linked to their DR standby; the project; and every
    environment, linked.

    Every environment file is read and checked even when only some are named: the project-wide
    stacks and a DR pairing depend on all of them. SettingsError lists every problem at once.
    """
    if not folder.is_dir():
        what = "is not a" if folder.exists() else "no such"
        raise SettingsError(
            [f"--settings {_show(folder)}: {what} folder (the folder of defaults.yaml and <env>.yaml files)"]
        )
    everything = available_environments(folder)
    wanted = list(names or everything)
    bad = [n for n in names or () if not re.fullmatch(ENVIRONMENT_NAME, n)]
    if bad:  # never read a path made of a name (--env ../x, --env ._prod)
        raise SettingsError(
            [
                f"--env {_shown(n)}: is not an environment name (lower-case letters and digits, starting with a "
                f"letter, at most 12){_file_name_hint(n, everything) or did_you_mean(n, everything)}; environments "
                f"here: {', '.join(everything)}"
                for n in bad
            ]
        )
    reserved = [n for n in names or () if n in RESERVED_MEANINGS]
    if reserved:  # not an environment: loading <name>.yaml would report a file that is not one
        raise SettingsError(
            [
                f"--env {n}: {RESERVED_MEANINGS[n]}, not an environment; environments here: {', '.join(everything)}"
                for n in reserved
            ]
        )
    problems: list[str] = _misnamed(folder)
    loaded = []
    refused: list[str] = []
    with read_once():  # defaults.yaml parsed once for every environment
        for name in [*everything, *(n for n in wanted if n not in everything)]:
            try:
                loaded.append(load_environment(name, folder))
            except SettingsError as error:
                problems.extend(p for p in error.problems if p not in problems)  # defaults.yaml once
                refused.append(name)
    problems = merge_inherited(
        problems,
        [*everything, *(n for n in wanted if n not in everything)],
        lambda name: _show(folder / f"{name}.yaml"),
    )
    problems.extend(unknown_environments(folder, everything, _show))
    if problems:
        owners = [*loaded, *(e for e in (_owned_names(n, folder) for n in refused) if e is not None)]
        raise SettingsError(problems + [p for p in _ownership_problems(owners, folder) if p not in problems])
    project = project_of(loaded, folder)
    everyone = link(loaded)
    return [env for env in everyone if env.name in wanted], project, everyone
