"""The environment model: every concern's settings together, with the rules across them."""

import re
import zlib
from collections.abc import Sequence
from functools import cache, cached_property
from typing import Annotated, Any, cast

from pydantic import (
    BeforeValidator,
    Field,
    ModelWrapValidatorHandler,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from infra_templates import quotas
from infra_templates.addons import Addons
from infra_templates.catalog import database_instance_classes, nearest, zones_of
from infra_templates.rules._data_api import data_api_problem
from infra_templates.settings.common import (
    ENVIRONMENT_NAME,
    MAX_TAG_VALUE,
    MAX_TAGS_PER_RESOURCE,
    RESERVED_ENVIRONMENT_NAMES,
    RESERVED_TAG_KEYS,
    FieldValueError,
    ManyFieldsError,
    Strict,
    check_each,
    check_region,
    did_you_mean,
    failed_locations,
    quoted_string,
    with_problems,
)
from infra_templates.settings.database import Database, ProvisionedCapacity
from infra_templates.settings.delivery import Delivery, Deployment, Strategy
from infra_templates.settings.dr import DisasterRecovery, Standby
from infra_templates.settings.edge import CLOUDFRONT_REGION, Edge, is_catch_all, lies_under
from infra_templates.settings.monitoring import Monitoring
from infra_templates.settings.network import Network
from infra_templates.settings.platform import Platform, Registry
from infra_templates.settings.services import (
    ORIGIN_HEADER_VALUES,
    PRIORITY_BAND,
    RESERVED_SERVICE_NAMES,
    RESERVED_SERVICE_PREFIXES,
    SERVICE_NAME,
    Capacity,
    Routing,
    Service,
)


class Environment(Strict):
    """One environment: what ``environments/defaults.yaml`` + ``environments/<name>.yaml`` say."""

    name: str = Field(
        pattern=ENVIRONMENT_NAME,
        description="The file name without .yaml: lower-case letters and digits, starting with a letter, "
        "at most 12 (it becomes part of every stack name)",
    )
    project: str = Field(
        pattern=r"^[a-z][a-z0-9-]{0,19}$",
        description="Lower-case letters, digits and hyphens, starting with a letter, at most 20.",
    )
    account_id: Annotated[str, BeforeValidator(quoted_string)] = Field(pattern=r"^[0-9]{12}$")
    region: str
    production: bool = Field(description="Production-grade safety nets (deletion protection...).")
    tags: dict[str, str] = Field(default_factory=dict)
    network: Network
    platform: Platform
    registry: Registry
    database: Database
    edge: Edge
    dr: DisasterRecovery | None = Field(default=None, description="Only in a DR environment's own file.")
    standby: Standby | None = Field(default=None, description="Set from the DR environment that protects this one.")
    services: dict[str, Service] = Field(description="Services by name (DNS-safe, unique).")
    delivery: Delivery
    deployment: Deployment
    monitoring: Monitoring = Field(default_factory=Monitoring)
    # Read from <settings>/addons/<name>/ (see infra_templates.addons), never from the file: not in
    # the schema, not in the settings' JSON (the layers' cache key: add-ons apply after the layers).
    addons: SkipJsonSchema[Addons] = Field(default_factory=Addons, exclude=True)

    @field_validator("project")
    @classmethod
    def _no_double_hyphen(cls, project: str) -> str:
        if project.endswith("-") or "--" in project:
            raise ValueError("must not end with a hyphen or contain '--' (it is joined to names with '-')")
        return project

    @field_validator("region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        return check_region(region)

    @field_validator("services", mode="before")
    @classmethod
    def _service_names(cls, services: Any) -> Any:
        def check(name: Any) -> None:
            if not re.fullmatch(SERVICE_NAME, str(name)):
                raise FieldValueError(
                    (name,),
                    "is not a DNS-safe service name: lower-case letters, digits and hyphens, starting with a "
                    "letter, at most 32",
                )
            if name in RESERVED_SERVICE_NAMES or str(name).startswith(RESERVED_SERVICE_PREFIXES):
                raise FieldValueError(
                    (name,),
                    "would give a service stack the name of one of the project's own stacks (registry-replication, "
                    "registry-replica-<region>, delivery-infrastructure, delivery-artifacts-<region>); pick another "
                    f"name (not {', '.join(RESERVED_SERVICE_NAMES)}, nor starting with "
                    f"{', '.join(RESERVED_SERVICE_PREFIXES)})",
                )

        check_each(services if isinstance(services, dict) else (), check)
        return services

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, tags: Any) -> Any:
        """Every problem of ``tags`` at once (a key the generator sets, a number where a string is
        meant, an ``aws:`` key): checked before pydantic's own type check, which would stop at the
        first value that is not a string and hide the rest. AWS's tag restrictions: keys 1-128
        characters, not starting with ``aws:`` (reserved for AWS's use), values at most 256
        characters, 50 tags a resource ("Tag restrictions", Tagging AWS Resources User Guide)."""
        if not isinstance(tags, dict):
            raise FieldValueError(
                (),
                "takes a mapping of tag key to value, one a line (Owner: team-shop), not "
                + ("a list" if isinstance(tags, list) else "nothing" if tags is None else "a single value"),
            )
        room = MAX_TAGS_PER_RESOURCE - len(RESERVED_TAG_KEYS)
        problems: list[FieldValueError] = []
        if len(tags) > room:
            problems.append(
                FieldValueError(
                    (),
                    f"has {len(tags)} tags; a resource takes {MAX_TAGS_PER_RESOURCE} (AWS tagging limits) and the "
                    f"generator adds {len(RESERVED_TAG_KEYS)}, so at most {room}",
                )
            )
        reserved = ", ".join(RESERVED_TAG_KEYS[:-1]) + " and " + RESERVED_TAG_KEYS[-1]
        for key, value in tags.items():
            if not isinstance(key, str):
                problems.append(FieldValueError((key,), "a tag key is a string: quote it", key))
                continue
            if key in RESERVED_TAG_KEYS:
                problems.append(
                    FieldValueError((key,), f"is set by the generator ({reserved} are); use another key", value)
                )
            elif key.lower().startswith("aws:") or not 1 <= len(key) <= 128:
                problems.append(
                    FieldValueError((key,), "tag keys are 1-128 characters and must not start with 'aws:'", value)
                )
            if not isinstance(value, str):
                problems.append(
                    FieldValueError((key,), "a tag value is a string: quote it in YAML (Owner: '12')", value)
                )
            elif len(value) > MAX_TAG_VALUE:
                problems.append(
                    FieldValueError(
                        (key,), f"is {len(value):,} characters; a tag value takes at most {MAX_TAG_VALUE}", value
                    )
                )
        if problems:
            raise ManyFieldsError(problems)
        return tags

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_ENVIRONMENT_NAMES:
            raise ValueError("is reserved for the output of project-wide stacks; rename the file")
        return name

    @model_validator(mode="wrap")
    @classmethod
    def _rules_that_can_run(cls, data: Any, handler: ModelWrapValidatorHandler["Environment"]) -> "Environment":
        """When some setting fails its own check, pydantic runs no model validator after it, so the
        rules across settings (_cross_field_rules) would wait for a second run. Those that read only
        settings that passed run now, on those values (:func:`_partial`: a rule that reads a failed
        setting stops and says nothing, never judging a stand-in value), and so does each service's
        ``calls`` and ``sends_to`` naming a service the file has, which needs only the names (a
        ``kind: webb`` must not hide a ``calls: [nobody]``). A problem at or under a location already
        reported is left out: one line per mistake."""
        try:
            return handler(data)
        except ValidationError as error:
            failed = failed_locations(error)
            services = data.get("services") if isinstance(data, dict) else None
            extra = [
                FieldValueError(("services", *p.path), str(p), p.value)
                for p in reference_problems(services if isinstance(services, dict) else {})
            ]
            partial = _partial(cls, data, {loc[0] for loc in failed if loc})
            if partial is not None:
                extra += partial._rule_problems(skip_unavailable=True)
            kept: dict[tuple[tuple[str | int, ...], str], FieldValueError] = {}
            for problem in extra:
                if not any(_related(problem.path, loc) for loc in failed):
                    kept.setdefault((problem.path, str(problem)), problem)
            if not kept:
                raise
            raise with_problems(error, (), list(kept.values()), data) from None

    @model_validator(mode="after")
    def _cross_field_rules(self) -> "Environment":
        """Every rule that spans several settings, all reported at once."""
        problems = self._rule_problems()
        if problems:
            raise ManyFieldsError(problems)
        return self

    def _rule_problems(self, *, skip_unavailable: bool = False) -> list[FieldValueError]:
        """The problems of every rule across settings; with ``skip_unavailable``, a rule that reads
        a setting which failed its own check (an :class:`_Unavailable`) is left out."""
        problems: list[FieldValueError] = []
        for rule in (
            self._certificate_problems,
            self._route_problems,
            self._zone_problems,
            self._instance_class_problems,
            self._production_problems,
            self._edge_problems,
            self._cloudfront_problems,
            self._posture_problems,
            self._delivery_problems,
            self._architecture_problems,
            self._quota_problems,
            self._pre_release_problems,
            self._kind_problems,
            self._database_user_problems,
        ):
            if not skip_unavailable:
                problems += rule()
                continue
            try:
                problems += rule()
            except (_UnavailableError, TypeError, AttributeError, KeyError):
                continue  # it reads a setting that failed its own check: it runs once that is fixed
        return problems

    def _database_user_problems(self) -> list[FieldValueError]:
        """Each service with ``database_access`` signs in as its own user, ``svc_<name>``, which the
        data layer creates through the RDS Data API (rules/_data_api.py has its contract); a DR
        environment's cluster receives the users with the data. MySQL user names are at most 32
        characters ("User Names and Passwords", MySQL 8.0 Reference Manual)."""
        users = sorted(name for name, service in self.services.items() if service.database_access)
        if not users or self.dr is not None:
            return []
        database = self.database
        instance_class = (
            database.capacity.instance_class if isinstance(database.capacity, ProvisionedCapacity) else None
        )
        problem = data_api_problem(database.engine, database.engine_version, self.region, instance_class)
        found = (
            [
                FieldValueError(
                    ("services", users[0], "database_access"),
                    f"needs the service's database user created through the RDS Data API, and {problem}",
                    True,
                )
            ]
            if problem
            else []
        )
        if database.engine == "aurora-mysql":
            found += [
                FieldValueError(
                    ("services", name, "database_access"),
                    f"its database user svc_{name.replace('-', '_')} would be longer than MySQL's 32 characters; "
                    "use a service name of at most 28",
                    True,
                )
                for name in users
                if len(name) > 28
            ]
        return found

    def _architecture_problems(self) -> list[FieldValueError]:
        """ARM64 tasks never run on Fargate Spot ("Linux tasks with the ARM64 architecture don't
        support the Fargate Spot capacity provider": ECS developer guide, Fargate capacity providers):
        an ARM64 service's share on FARGATE_SPOT would never start."""
        return [
            FieldValueError(
                ("services", name, "architecture"),
                f"ARM64 tasks cannot run on Fargate Spot, and this service's capacity puts a share there "
                f"(spot_weight {self.capacity_of(name).spot_weight}); give it capacity {{fargate_weight: 1, "
                "spot_weight: 0}} or architecture X86_64",
                "ARM64",
            )
            for name, service in sorted(self.services.items())
            if service.architecture == "ARM64" and self.capacity_of(name).spot_weight > 0
        ]

    def _quota_problems(self) -> list[FieldValueError]:
        """AWS's default quotas the environment's load balancers and security groups would exceed
        (quotas.py has each quota's name, value and source; the gate counts the same in the
        output). Services are split over as many load balancers as the quotas need
        (``load_balancer_groups``); what no split can fix is refused, the quota named."""
        problems: list[FieldValueError] = []
        for group in self.load_balancer_groups():
            problems += [
                FieldValueError(
                    ("services", group[0]) if len(group) == 1 else ("services",),
                    f"{count} {what}; AWS quota '{quota.name}' is {quota.default} ({quota.source})",
                )
                for quota, count, what in self._load_balancer_usage(group)
                if count > quota.default
            ]
        groups = len(self.load_balancer_groups())
        if groups > quotas.LOAD_BALANCERS_PER_REGION.default:
            limit = quotas.LOAD_BALANCERS_PER_REGION
            problems.append(
                FieldValueError(
                    ("services",),
                    f"need {groups} load balancers; AWS quota '{limit.name}' is {limit.default} ({limit.source})",
                )
            )
        weight = quotas.CLOUDFRONT_ORIGIN_FACING_WEIGHT if self.platform.ingress == "cloudfront" else 1
        inbound = weight * (2 if self.platform.listens_http else 1) + (1 if self.blue_green_services else 0)
        database = sum(1 for s in self.services.values() if s.database_access)
        for where, count, what in (
            (
                ("platform", "ingress"),
                inbound,
                "inbound rules on a load balancer's security group (platform.http_redirect adds a second port)",
            ),
            (
                ("services",),
                database,
                "inbound rules on the database's security group (one per service with database_access)",
            ),
        ):
            limit = quotas.INBOUND_RULES_PER_GROUP
            if count > limit.default:
                problems.append(
                    FieldValueError(
                        where, f"{count} {what}; AWS quota '{limit.name}' is {limit.default} ({limit.source})"
                    )
                )
        return problems

    def _load_balancer_usage(self, group: Sequence[str]) -> list[tuple[quotas.Quota, int, str]]:
        """What the services of one load balancer put on it and on its security group."""
        per_service = {name: 2 if self.strategy_of(name) == "blue-green" else 1 for name in group}
        return [
            (quotas.TARGET_GROUPS_PER_ALB, sum(per_service.values()),
             "target groups on one load balancer (a blue-green service has two)"),
            (quotas.RULES_PER_ALB, sum(per_service.values()),
             "listener rules on one load balancer (a blue-green service has a test listener rule too)"),
            (quotas.OUTBOUND_RULES_PER_GROUP, 1 + len(group),
             "outbound rules on a load balancer's security group (one per service, one that removes the default)"),
            (quotas.TARGETS_PER_ALB, sum(self.services[n].scaling.max * per_service[n] for n in group),
             "targets at most on one load balancer (autoscaling.max of each service, twice for blue-green)"),
        ]  # fmt: skip

    def load_balancer_groups(self) -> list[list[str]]:
        """The services of each load balancer (a copy of ``_load_balancer_groups``)."""
        return [list(group) for group in self._load_balancer_groups]

    def load_balancer_of(self, service: str) -> int:
        """Index (from 0) of the load balancer whose listeners route to ``service``."""
        return self._load_balancer_index[service]

    @cached_property
    def _load_balancer_index(self) -> dict[str, int]:
        return {name: i for i, group in enumerate(self._load_balancer_groups) for name in group}

    @cached_property
    def _load_balancer_groups(self) -> tuple[tuple[str, ...], ...]:
        """The services of each load balancer, the first load balancer's first (computed once:
        every service stack asks which load balancer it is on).

        One load balancer holds as many services as AWS's default quotas let it (100 target groups
        and 100 rules, 60 outbound rules on its security group, 1,000 targets; a blue-green service
        takes two target groups and two rules): services are taken in order and a new load balancer
        starts when the next one would not fit, in the order of their names. CloudFront reaches the
        first (``edge.origin_domain``); with ``platform.ingress: cloudfront`` the settings refuse a
        second (``_cloudfront_problems``). An environment that fits in one gets one, as before.
        """
        groups: list[list[str]] = [[]]
        for name in self.web_services:
            candidate = [*groups[-1], name]
            fits = all(count <= quota.default for quota, count, _ in self._load_balancer_usage(candidate))
            if groups[-1] and not fits:
                groups.append([name])
            else:
                groups[-1].append(name)
        return tuple(tuple(group) for group in groups)

    def cloudfront_services(self) -> list[str]:
        """The web services CloudFront reaches: those of the first load balancer (the one
        ``edge.origin_domain`` names) routed by path alone. CloudFront presents the origin's name as
        the Host (``templates/edge.py``), so a host-routed service is reached at its own host name
        with ``platform.ingress: internet`` only (the settings refuse it behind CloudFront)."""
        first = self.load_balancer_groups()[0]
        return [name for name in first if not self.service_routing(name).hosts]

    def cloudfront_default_to_load_balancer(self) -> bool:
        """Whether a service CloudFront reaches owns '/*': then the distribution's default behaviour
        goes to the load balancer, and the assets are served under ``edge.assets_path`` only."""
        return any(is_catch_all(p) for n in self.cloudfront_services() for p in self.service_routing(n).paths)

    def cloudfront_routes(self) -> list[str]:
        """The path patterns CloudFront sends to the load balancer with a cache behaviour each:
        every distinct ``routing.paths`` value of ``cloudfront_services`` but a catch-all (the
        default behaviour's), sorted. CloudFront matches a pattern exactly as the ALB's
        path-pattern condition does (``settings.edge``), so the same string reaches the same
        requests."""
        return sorted(
            {p for n in self.cloudfront_services() for p in self.service_routing(n).paths if not is_catch_all(p)}
        )

    def _cloudfront_problems(self) -> list[FieldValueError]:
        """What CloudFront could not deliver to the services it reaches, refused rather than lost:
        a route under ``edge.assets_path`` (that behaviour comes first: the bucket would answer),
        more cache behaviours than CloudFront's quota, and behind CloudFront (``platform.ingress:
        cloudfront``) a host condition (CloudFront sends the origin's name as Host, never the
        viewer's: see ``templates/edge.py``) or a second load balancer (CloudFront reaches the
        first alone, and no other way in is open)."""
        problems: list[FieldValueError] = []
        assets = self.edge.assets_path
        for name in self.cloudfront_services():
            for index, path in enumerate(self.service_routing(name).paths):
                if lies_under(path, assets):
                    problems.append(
                        FieldValueError(
                            ("services", name, "routing", "paths", index),
                            f"lies under edge.assets_path ({assets}), which CloudFront serves from the assets "
                            "bucket before any route: the service would get none of these requests; move the "
                            "route, or edge.assets_path",
                            path,
                        )
                    )
        behaviours = 2 + len(self.cloudfront_routes())  # the default, the assets path, one per route
        limit = quotas.CACHE_BEHAVIORS_PER_DISTRIBUTION
        if behaviours > limit.default:
            problems.append(
                FieldValueError(
                    ("services",),
                    f"the web services' {behaviours - 2} distinct routing.paths make {behaviours} CloudFront cache "
                    f"behaviours with the default and edge.assets_path; AWS quota '{limit.name}' is "
                    f"{limit.default} ({limit.source}); share path patterns (e.g. '/api/*')",
                )
            )
        if self.platform.ingress != "cloudfront":
            return problems
        for name in self.web_services:
            if self.service_routing(name).hosts:
                problems.append(
                    FieldValueError(
                        ("services", name, "routing", "hosts"),
                        f"never matches behind CloudFront (platform.ingress: cloudfront): CloudFront sends the "
                        f"load balancer its origin name ({self.edge.origin_domain}) as Host, not the viewer's "
                        "(CloudFront checks the load balancer's certificate against the Host it sends); route by "
                        "paths, or set platform.ingress: internet and point the host names at the load balancer",
                    )
                )
        beyond = [name for group in self.load_balancer_groups()[1:] for name in group]
        if beyond:
            problems.append(
                FieldValueError(
                    ("services", beyond[0]),
                    f"is on load balancer 2 of {len(self.load_balancer_groups())} (the web services exceed one's "
                    "quotas: 100 target groups, 100 rules; a blue-green service takes two of each), and behind "
                    "CloudFront (platform.ingress: cloudfront) only the first is reached (edge.origin_domain); "
                    "fewer web services, rolling ones, or platform.ingress: internet (the others are then reached "
                    "at their own DNS names, outputs LoadBalancerDnsName2...)",
                )
            )
        return problems

    def _certificate_problems(self) -> list[FieldValueError]:
        match = re.fullmatch(
            r"arn:aws(-[a-z]+)*:acm:([a-z0-9-]+):([0-9]{12}):certificate/[0-9a-f-]{36}", self.platform.certificate_arn
        )
        where = ("platform", "certificate_arn")
        if not match:
            return [FieldValueError(where, "is not an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID)")]
        if match.group(2) != self.region or match.group(3) != self.account_id:
            return [
                FieldValueError(
                    where,
                    f"must be a certificate in this environment's account {self.account_id} and region "
                    f"{self.region}: an ALB can only use a certificate from its own account and region",
                )
            ]
        return []

    def _route_problems(self) -> list[FieldValueError]:
        problems: list[FieldValueError] = []
        seen: dict[tuple[frozenset[str], str], str] = {}
        for name in self.web_services:
            routing = self.service_routing(name)
            hosts = frozenset(routing.hosts)
            for index, path in enumerate(routing.paths or ["(any)"]):
                owner = seen.setdefault((hosts, path), name)
                if owner != name:
                    problems.append(
                        FieldValueError(
                            ("services", name, "routing", "paths" if routing.paths else "hosts", index),
                            f"routes the same requests as services.{owner}; give each service its own paths or hosts",
                            path,
                        )
                    )
        problems.extend(self._origin_header_problems())
        priorities: dict[int, str] = {}
        for name in self.web_services:
            priority = self.service_routing(name).priority
            if priority is not None:
                owner = priorities.setdefault(priority, name)
                if owner != name:
                    problems.append(
                        FieldValueError(
                            ("services", name, "routing", "priority"),
                            f"is already the priority of services.{owner}; priorities must be unique",
                            priority,
                        )
                    )
        return problems

    def _origin_header_problems(self) -> list[FieldValueError]:
        """Behind CloudFront every forwarding rule also requires the origin-verify header, whose
        condition takes ORIGIN_HEADER_VALUES of the rule's condition values (its current and previous
        value: templates/origin_verify.py): the paths and hosts keep the rest of AWS's quota."""
        if self.platform.ingress != "cloudfront":
            return []
        limit = quotas.CONDITION_VALUES_PER_RULE
        room = limit.default - ORIGIN_HEADER_VALUES
        problems = []
        for name in self.web_services:
            routing = self.service_routing(name)
            given = len(routing.paths) + len(routing.hosts)
            if given > room:
                problems.append(
                    FieldValueError(
                        ("services", name, "routing", "paths" if routing.paths else "hosts"),
                        f"{len(routing.paths)} paths and {len(routing.hosts)} hosts, with the {ORIGIN_HEADER_VALUES} "
                        "values of the origin-verify header condition every rule has behind CloudFront "
                        f"(platform.ingress: cloudfront), make {given + ORIGIN_HEADER_VALUES} condition values; "
                        f"AWS quota '{limit.name}' is {limit.default} ({limit.source}): give at most {room} paths "
                        "and hosts together, or set platform.ingress: internet",
                    )
                )
        return problems

    def _posture_problems(self) -> list[FieldValueError]:
        if self.dr is None or self.dr.posture != "pilot-light":
            return []
        return [
            FieldValueError(
                ("services", name, "desired_count"),
                "must be 0 or 1 in a pilot-light DR environment (dr.posture); failover scales it up",
                service.desired_count,
            )
            for name, service in sorted(self.services.items())
            if (service.desired_count or 0) > 1 or (service.autoscaling is not None and service.autoscaling.min > 1)
        ]

    def _edge_problems(self) -> list[FieldValueError]:
        edge = self.edge
        where = ("edge", "certificate_arn")
        if edge.certificate_arn is None:
            if edge.aliases:
                return [
                    FieldValueError(
                        where, "is required with edge.aliases: CloudFront serves an alias only with its certificate"
                    )
                ]
            return []
        if not edge.aliases:
            return [FieldValueError(where, "is set but edge.aliases is empty: give the host names it is for")]
        match = re.fullmatch(
            r"arn:aws(-[a-z]+)*:acm:([a-z0-9-]+):([0-9]{12}):certificate/[0-9a-f-]{36}", edge.certificate_arn
        )
        problem = None
        if not match:
            problem = "is not an ACM certificate ARN (arn:aws:acm:us-east-1:ACCOUNT:certificate/ID)"
        elif match.group(2) != CLOUDFRONT_REGION:
            problem = f"must be a certificate in {CLOUDFRONT_REGION}: CloudFront uses no other region's"
        elif match.group(3) != self.account_id:
            problem = f"must be a certificate of this environment's account {self.account_id}"
        return [FieldValueError(where, problem)] if problem else []

    def _production_problems(self) -> list[FieldValueError]:
        """Production environments keep their safety nets on."""
        if not self.production:
            return []
        problems = []
        if not self.database.deletion_protection:
            problems.append(
                FieldValueError(
                    ("database", "deletion_protection"),
                    "must be true in a production environment (production: true)",
                    False,
                )
            )
        if not self.platform.deletion_protection:
            problems.append(
                FieldValueError(
                    ("platform", "deletion_protection"),
                    "must be true in a production environment (production: true)",
                    False,
                )
            )
        if (
            self.dr is None  # a DR cluster's instances follow its posture; its primary has the reader
            and self.database.capacity.readers < 1
        ):
            problems.append(
                FieldValueError(
                    ("database", "capacity", "readers"),
                    "must be at least 1 in a production environment: a reader in another zone takes over "
                    "when the writer's zone fails",
                    self.database.capacity.readers,
                )
            )
        return problems

    def _zone_problems(self) -> list[FieldValueError]:
        known = len(zones_of(self.region))
        if self.network.availability_zones > known:
            return [
                FieldValueError(
                    ("network", "availability_zones"),
                    f"{self.region} has {known} availability zones; use at most {known}",
                    self.network.availability_zones,
                )
            ]
        return []

    def _instance_class_problems(self) -> list[FieldValueError]:
        """A provisioned database's instance class is one AWS offers for its engine, version and region
        (cfn-lint's tables, ``catalog.database_instance_classes``): caught here, with the nearest
        classes, not minutes later by the lint on the generated JSON."""
        database = self.database
        if not isinstance(database.capacity, ProvisionedCapacity):
            return []
        chosen = database.capacity.instance_class
        offered = database_instance_classes(database.engine, self.region, database.engine_version)
        if not offered or chosen in offered:
            return []
        guesses = nearest(chosen, offered) or nearest(chosen.rsplit(".", 1)[0] + ".large", offered)
        hint = f" (did you mean {' or '.join(guesses)}?)" if guesses else ""
        return [
            FieldValueError(
                ("database", "capacity", "instance_class"),
                f"is not an instance class AWS offers for {database.engine} {database.engine_version} in "
                f"{self.region}{hint}",
                chosen,
            )
        ]

    def _pre_release_problems(self) -> list[FieldValueError]:
        """A pre-release command runs from an ECS lifecycle hook (POST_SCALE_UP), which the ECS
        controller calls for its blue/green, canary and linear deployments (Amazon ECS Developer
        Guide, "Lifecycle hooks for Amazon ECS service deployments")."""
        return [
            FieldValueError(
                ("services", name, "pre_release"),
                "needs deployment strategy blue-green with deployment.controller ecs: the command runs from an "
                f"ECS lifecycle hook before traffic shifts (this service: {self.strategy_of(name)}"
                f"{', codedeploy' if self.codedeploy(name) else ''})",
            )
            for name, service in sorted(self.services.items())
            if service.pre_release and (self.strategy_of(name) != "blue-green" or self.codedeploy(name))
        ]

    def _delivery_problems(self) -> list[FieldValueError]:
        """Role names fit IAM's 64 characters; a connection names a repository for every service."""
        problems = [
            FieldValueError(
                ("services", name),
                f"makes the role name {self.project}-{self.name}-{name}-deploy longer than IAM's 64 characters; "
                "use a shorter service, environment or project name",
            )
            for name in sorted(self.services)
            if len(f"{self.project}-{self.name}-{name}-deploy") > 64
        ]
        connection = self.delivery.connection
        if connection is None:
            return problems
        if connection.infrastructure is None:
            problems.append(
                FieldValueError(
                    ("delivery", "connection", "infrastructure"),
                    "is missing: with a connection, the infrastructure pipeline reads this repository through it "
                    "too; give its repository id (owner/name)",
                )
            )
        problems += [
            FieldValueError(
                ("delivery", "connection", "repositories", name),
                "is missing: with a connection every service needs its repository id (owner/name)",
            )
            for name in sorted(set(self.services) - set(connection.repositories))
        ]
        problems += [
            FieldValueError(
                ("delivery", "connection", "repositories", name),
                f"is not a service; services are {', '.join(sorted(self.services))}",
            )
            for name in sorted(set(connection.repositories) - set(self.services))
        ]
        return problems

    def strategy_of(self, service: str) -> Strategy:
        """The service's own strategy if it sets one, else the environment's; a service of another
        kind than web releases rolling (blue/green shifts a load balancer's traffic)."""
        if self.services[service].kind != "web":
            return "rolling"
        return self.services[service].deployment_strategy or self.deployment.strategy

    @property
    def web_services(self) -> list[str]:
        """The services behind the load balancer (kind web), by name."""
        return [name for name in sorted(self.services) if self.services[name].kind == "web"]

    def of_kind(self, kind: str) -> list[str]:
        """The services of ``kind``, by name."""
        return [name for name in sorted(self.services) if self.services[name].kind == kind]

    def service_routing(self, service: str) -> Routing:
        """The routing of web service ``service`` (the settings require one of every web service)."""
        return self.services[service].web_routing

    def _kind_problems(self) -> list[FieldValueError]:
        """What one service says of another: ``calls`` names backends (through Service Connect,
        which the CODE_DEPLOY controller does not support: ECS Developer Guide, "Service Connect
        considerations"), ``sends_to`` names workers; a worker that scales on its backlog needs
        Container Insights (the backlog per task divides by its RunningTaskCount: Application Auto
        Scaling User Guide, "Example: Amazon SQS queue backlog per task"); a worker's queue is named
        after its stack, within SQS's 80 characters (SQS API Reference, CreateQueue QueueName)."""
        problems: list[FieldValueError] = [
            FieldValueError(("services", *p.path), str(p), p.value)
            for p in reference_problems({name: s.model_dump() for name, s in self.services.items()})
        ]
        for name, service in sorted(self.services.items()):
            for field, kind in (("calls", "backend"), ("sends_to", "worker")):
                for index, other in enumerate(getattr(service, field)):
                    if other == name or other not in self.services:
                        continue  # reference_problems
                    if self.services[other].kind != kind:
                        problems.append(
                            FieldValueError(
                                ("services", name, field, index),
                                f"is a {self.services[other].kind} service; {field} names {kind} services only "
                                f"({', '.join(self.of_kind(kind)) or 'none here'})",
                                other,
                            )
                        )
            if service.calls and self.codedeploy(name):
                problems.append(
                    FieldValueError(
                        ("services", name, "calls"),
                        "needs Service Connect, which ECS does not support with the CODE_DEPLOY controller "
                        "(deployment.controller: codedeploy); use controller ecs or deployment_strategy rolling",
                    )
                )
            limit = quotas.INSTANCES_PER_CLOUD_MAP_SERVICE
            if service.kind == "backend" and service.scaling.max * 2 > limit.default:
                problems.append(
                    FieldValueError(
                        ("services", name, "autoscaling", "max"),
                        f"lets {service.scaling.max * 2} tasks register while a release rolls (twice the maximum); "
                        f"AWS quota '{limit.name}' of Cloud Map is {limit.default} ({limit.source})",
                        service.scaling.max,
                    )
                )
            if service.kind == "worker":
                scaling = service.autoscaling
                if scaling is not None and scaling.max > scaling.min and self.platform.container_insights == "disabled":
                    problems.append(
                        FieldValueError(
                            ("services", name, "autoscaling", "max"),
                            "above min makes the worker scale on its backlog per task, which divides by Container "
                            "Insights' RunningTaskCount: turn platform.container_insights on, or set max to min",
                            scaling.max,
                        )
                    )
                queue = f"{self.project}-{self.name}-svc-{name}"
                if len(queue) > 80:
                    problems.append(
                        FieldValueError(
                            ("services", name),
                            f"makes the queue name {queue} longer than SQS's 80 characters; use a shorter name",
                        )
                    )
        return problems

    @property
    def blue_green_services(self) -> list[str]:
        """Services released blue/green, by either controller."""
        return [name for name in sorted(self.services) if self.strategy_of(name) == "blue-green"]

    @property
    def codedeploy_services(self) -> list[str]:
        """Blue/green services whose traffic CodeDeploy shifts (``deployment.controller: codedeploy``)."""
        return self.blue_green_services if self.deployment.controller == "codedeploy" else []

    def codedeploy(self, service: str) -> bool:
        """Whether CodeDeploy releases ``service`` (CODE_DEPLOY controller); otherwise ECS does."""
        return service in self.codedeploy_services

    def capacity_of(self, service: str) -> Capacity:
        return self.services[service].capacity or self.platform.capacity

    def listener_priorities(self) -> dict[str, int]:
        """A listener rule priority per service: explicit ones as given, the rest derived.

        Derived priorities put more specific rules first (host headers before paths only, deeper
        paths before shallower, the catch-all ``/*`` last) and, within that band, a slot from a hash
        of the name: adding a service leaves the others' priorities alone, so service stacks can
        be deployed in any order without two rules claiming one priority.
        """
        taken = {self.service_routing(n).priority: n for n in self.web_services if self.service_routing(n).priority}
        result = {name: priority for priority, name in taken.items() if priority is not None}
        for name in self.web_services:
            if name in result:
                continue
            routing = self.service_routing(name)
            depth = max(
                (len([x for x in p.split("*")[0].split("?")[0].split("/") if x]) for p in routing.paths), default=0
            )
            band = (0 if routing.hosts else 10) + 9 - min(depth, 9)
            slot = zlib.crc32(name.encode()) % PRIORITY_BAND
            priority = band * PRIORITY_BAND + 1 + slot
            while priority in taken:
                priority = band * PRIORITY_BAND + 1 + (priority - band * PRIORITY_BAND) % PRIORITY_BAND
            taken[priority] = name
            result[name] = priority
        return dict(sorted(result.items()))


def reference_problems(services: dict[Any, Any]) -> list[FieldValueError]:
    """Each service's ``calls`` and ``sends_to`` entries that name itself or no service of
    ``services`` (the file's mapping of service name to settings, validated or not: only names are
    read), with paths below ``services``."""
    problems: list[FieldValueError] = []
    names = sorted(str(n) for n in services)
    for name, service in sorted(services.items(), key=lambda item: str(item[0])):
        for field in ("calls", "sends_to"):
            listed = service.get(field) if isinstance(service, dict) else None
            for index, other in enumerate(listed if isinstance(listed, list) else []):
                if other == name:
                    problems.append(FieldValueError((name, field, index), "names itself", other))
                elif isinstance(other, str) and other not in services:
                    problems.append(
                        FieldValueError(
                            (name, field, index),
                            f"is not a service{did_you_mean(other, names)}; services are {', '.join(names)}",
                            other,
                        )
                    )
    return problems


def _related(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Whether one location is the other or lies under it (a problem already said of the same value)."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


class _UnavailableError(Exception):
    """A rule read a setting that failed its own check."""


class _Unavailable:
    """Stands in for a setting that failed its own check, in :func:`_partial`: anything a rule does
    with it (an attribute, a comparison, a truth test, iteration, formatting) raises
    _UnavailableError, so the rule stops instead of judging a value the file does not have."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise _UnavailableError

    __getattr__ = __getitem__ = __iter__ = __len__ = __bool__ = __contains__ = _refuse
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = _refuse
    __str__ = __repr__ = __format__ = __int__ = __float__ = __index__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _refuse


def _partial(model: type["Environment"], data: Any, failed: set[Any]) -> "Environment | None":
    """An Environment of the settings in ``data`` that pass their own checks, each setting in
    ``failed`` (a top-level key whose value failed) an :class:`_Unavailable`; None if ``data`` is
    not a mapping. Only for reporting more problems of a refused file: never built otherwise."""
    if not isinstance(data, dict):
        return None
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in failed:
            values[name] = _Unavailable()
        elif name in data:
            try:
                values[name] = _field_adapter(model, name).validate_python(data[name], strict=True)
            except ValidationError:  # passed inside the model, fails alone: judge nothing of it
                values[name] = _Unavailable()
        elif not info.is_required():
            values[name] = info.get_default(call_default_factory=True, validated_data=values)
        else:
            values[name] = _Unavailable()
    return model.model_construct(**values)


@cache
def _field_adapter(model: type["Environment"], name: str) -> TypeAdapter[Any]:
    """A validator of one field of ``model`` alone (its type and its constraints, not the model's
    own field validators: the value already passed those inside the model)."""
    info = model.model_fields[name]
    return TypeAdapter(cast(Any, Annotated[info.annotation, info]))
