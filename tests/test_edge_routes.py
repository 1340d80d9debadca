"""CloudFront reaches every web route: each path of each web service is served by a cache behaviour
whose origin is the load balancer that routes it, the assets path by the bucket, and what CloudFront
could not deliver is refused (file and field).

CloudFront's matching is implemented from its documentation (``settings.edge.path_pattern_matches``:
CloudFront Developer Guide, "Cache behavior settings", Path pattern: the behaviours in their listed
order, the first match wins, the default behaviour last; '*' any 0 or more characters, '?' exactly
one, case-sensitive, the leading '/' optional), and checked here against the documentation's own
examples before it judges the generated distributions.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import BUILT, ENVIRONMENTS, SETTINGS, edit_yaml, refusal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra_templates.config import Environment, SettingsError, load_environment
from infra_templates.settings.edge import lies_under, path_pattern_matches
from templates import edge

LOAD_BALANCER = "load-balancer"
BUCKET = {"assets", "assets-failover"}


def distribution_of(env: Environment) -> dict[str, Any]:
    config: dict[str, Any] = edge.build(env).to_dict()["Resources"]["Distribution"]["Properties"]
    return config["DistributionConfig"]  # type: ignore[no-any-return]


def served_by(config: dict[str, Any], path: str) -> str:
    """The origin CloudFront sends ``path`` to: the first behaviour whose pattern matches, else the default."""
    for behaviour in config.get("CacheBehaviors", []):
        if path_pattern_matches(behaviour["PathPattern"], path):
            return str(behaviour["TargetOriginId"])
    return str(config["DefaultCacheBehavior"]["TargetOriginId"])


def examples(pattern: str, fillers: tuple[str, ...] = ("", "x", "a/b.c", "Z-9/")) -> list[str]:
    """Request paths ``pattern`` matches: each '*' filled with each filler in turn, each '?' with 'q'."""
    return sorted({pattern.replace("?", "q").replace("*", filler) for filler in fillers})


def assert_every_route_reaches_its_load_balancer(env: Environment, config: dict[str, Any]) -> int:
    """Every request path of every route of the services CloudFront reaches, but those under
    edge.assets_path, goes to the load balancer origin named edge.origin_domain; the assets path
    goes to the bucket. Returns the number of paths checked."""
    origins = {o["Id"]: o for o in config["Origins"]}
    checked = 0
    for name in env.cloudfront_services():
        assert env.load_balancer_of(name) == 0  # the one edge.origin_domain names
        for pattern in env.service_routing(name).paths:
            for path in examples(pattern):
                if path_pattern_matches(env.edge.assets_path, path):
                    continue  # the assets' (a catch-all route gives those up; any other is refused)
                origin = served_by(config, path)
                assert origin == LOAD_BALANCER, (name, pattern, path, origin)
                assert origins[origin]["DomainName"] == env.edge.origin_domain
                checked += 1
    for path in examples(env.edge.assets_path):
        assert served_by(config, path) in BUCKET, path
    return checked


# --- the matcher, on the documentation's examples --------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("images/*.jpg", "/images/sample.jpg", True),
        ("images/*.jpg", "/images/product1/sample.jpg", True),  # '*' crosses '/'
        ("/images/*.jpg", "/images/sample.jpg", True),  # the same with or without the leading '/'
        ("images/*.jpg", "/images/sample.gif", False),
        ("*.jpg", "/LOGO.JPG", False),  # case-sensitive
        ("a??.jpg", "/ant.jpg", True),
        ("a??.jpg", "/an.jpg", False),  # '?' is exactly one character
        ("*.doc*", "/report.docx", True),
        ("*.doc?", "/report.doc", False),
        ("/api/*", "/api", False),
        ("/api/*", "/api/", True),
    ],
)
def test_the_matcher_follows_cloudfronts_path_pattern_examples(pattern: str, path: str, matches: bool) -> None:
    assert path_pattern_matches(pattern, path) is matches


def test_the_first_matching_behaviour_wins_as_documented() -> None:
    """The guide's example: images/*.jpg, images/*, *.gif: images/sample.gif takes the second."""
    config = {
        "CacheBehaviors": [
            {"PathPattern": "images/*.jpg", "TargetOriginId": "first"},
            {"PathPattern": "images/*", "TargetOriginId": "second"},
            {"PathPattern": "*.gif", "TargetOriginId": "third"},
        ],
        "DefaultCacheBehavior": {"TargetOriginId": "default"},
    }
    assert served_by(config, "/images/sample.gif") == "second"
    assert served_by(config, "/logo.gif") == "third"
    assert served_by(config, "/index.html") == "default"


@pytest.mark.parametrize(
    ("pattern", "under"),
    [
        ("/assets/*", True),
        ("/assets/img/*.png", True),
        ("/assets/?x", True),
        ("/assets*", False),  # '/assets' itself, and '/assetsX', are not under '/assets/'
        ("/ass?ts/*", False),
        ("/a*", False),
        ("/*", False),
        ("/api/*", False),
    ],
)
def test_a_route_lies_under_the_assets_path_only_if_every_path_it_matches_does(pattern: str, under: bool) -> None:
    assert lies_under(pattern, "/assets/*") is under
    # and CloudFront agrees: every example of an 'under' pattern is an asset, some of any other is not
    paths = examples(pattern, ("", "x", "e", "/", "ets/y", "sets/z"))
    assert all(path_pattern_matches("/assets/*", p) for p in paths) is under


# --- the shipped fixtures ------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_web_route_of_each_environment_reaches_its_load_balancer(environments, env) -> None:
    environment = environments[env]
    assert environment.platform.ingress == "cloudfront"
    assert set(environment.cloudfront_services()) == set(environment.web_services)  # all of them, on one ALB
    assert assert_every_route_reaches_its_load_balancer(environment, distribution_of(environment)) > 0


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_generated_template_is_the_one_judged(stacks, environments, env) -> None:
    built = stacks[env]["edge"].body["Resources"]["Distribution"]["Properties"]["DistributionConfig"]
    assert built == distribution_of(environments[env])


def test_without_a_catch_all_the_bucket_is_the_default_and_each_route_has_a_behaviour(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", services__web__routing={"paths": ["/shop/*", "/account/*"]})
    env = load_environment("staging", settings_dir)
    config = distribution_of(env)
    assert config["DefaultCacheBehavior"]["TargetOriginId"] == "assets"
    assert config["DefaultRootObject"] == "index.html"  # the bucket serves '/'
    assert [(b["PathPattern"], b["TargetOriginId"]) for b in config["CacheBehaviors"]] == [
        ("/assets/*", "assets"),
        ("/account/*", LOAD_BALANCER),
        ("/api/*", LOAD_BALANCER),
        ("/shop/*", LOAD_BALANCER),
    ]
    assert assert_every_route_reaches_its_load_balancer(env, config) > 0
    assert served_by(config, "/index.html") == "assets"


def test_with_ingress_internet_a_host_routed_service_is_not_reached_through_cloudfront(settings_dir: Path) -> None:
    """Reached at its own host name on the load balancer; CloudFront, which sends the origin's
    name as Host, gets no behaviour for it (its rule would never match)."""
    edit_yaml(
        settings_dir / "staging.yaml",
        platform__ingress="internet",
        services__api__routing={"paths": ["/api/*"], "hosts": ["api.staging.shop.example.com"]},
    )
    env = load_environment("staging", settings_dir)
    assert env.cloudfront_services() == ["web"]
    assert [b["PathPattern"] for b in distribution_of(env)["CacheBehaviors"]] == ["/assets/*"]


# --- refusals ----------------------------------------------------------------------------------


def test_a_host_condition_behind_cloudfront_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", services__api__routing={"paths": ["/api/*"], "hosts": ["api.example.com"]})
    message = refusal(settings_dir)
    assert "staging.yaml: services.api.routing.hosts: never matches behind CloudFront" in message
    assert "origin.staging.shop.example.com" in message and "platform.ingress: internet" in message


def test_a_route_under_the_assets_path_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", services__api__routing={"paths": ["/api/*", "/assets/uploads/*"]})
    message = refusal(settings_dir)
    assert "staging.yaml: services.api.routing.paths[1] = '/assets/uploads/*': lies under edge.assets_path" in message


def test_the_assets_path_is_a_prefix_and_a_star(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", edge__assets_path="/static*")
    assert "staging.yaml: edge.assets_path" in refusal(settings_dir)


def test_the_old_api_path_is_refused_with_what_replaced_it(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", edge__api_path="/api/*")
    message = refusal(settings_dir)
    assert "staging.yaml: edge.api_path = '/api/*': is gone" in message and "edge.assets_path" in message


@pytest.mark.parametrize("path", ["/search=1", "/100%/*"])
def test_characters_neither_cloudfront_nor_the_alb_take_are_refused(settings_dir: Path, path: str) -> None:
    edit_yaml(settings_dir / "staging.yaml", services__api__routing={"paths": [path]})
    assert "staging.yaml: services.api.routing.paths[0]" in refusal(settings_dir)


def _web_services(settings_dir: Path, count: int, paths_each: int = 1) -> None:
    path = settings_dir / "staging.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    for i in range(count):
        data.setdefault("services", {})[f"s{i:03d}"] = {
            "port": 8080,
            "cpu": 256,
            "memory": 512,
            "desired_count": 1,
            "autoscaling": {"min": 1, "max": 2},
            "routing": {"paths": [f"/s{i:03d}/{j}/*" for j in range(paths_each)]},
            "health_check": {"path": "/healthz"},
        }
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_more_cache_behaviours_than_cloudfronts_quota_are_refused(settings_dir: Path) -> None:
    """15 services of 5 paths: 75 routes, and /api/*, the assets path and the default make 78."""
    _web_services(settings_dir, 15, paths_each=5)
    message = refusal(settings_dir)
    assert "staging.yaml: services: the web services' 76 distinct routing.paths make 78 CloudFront cache" in message
    assert "AWS quota 'Cache behaviors per distribution' is 75" in message and "cloudfront-limits.html" in message


def test_the_quota_leaves_room_for_seventy_three_routes(settings_dir: Path) -> None:
    # and /api/*: 73 routes; 75 behaviours with the assets path and the default
    _web_services(settings_dir, 36, paths_each=2)
    env = load_environment("staging", settings_dir)
    config = distribution_of(env)
    assert len(config["CacheBehaviors"]) + 1 == 75
    assert assert_every_route_reaches_its_load_balancer(env, config) > 0


def test_a_second_load_balancer_behind_cloudfront_is_refused(settings_dir: Path) -> None:
    """51 blue-green services need two load balancers; CloudFront reaches the first alone."""
    _web_services(settings_dir, 49)
    message = refusal(settings_dir)
    # web is defaults.yaml's, the services that push it onto a second load balancer staging's: both named
    defaults = settings_dir / "defaults.yaml"
    assert f"staging.yaml: services.web (inherited from {defaults}): is on load balancer 2 of 2" in message
    assert "platform.ingress: internet" in message
    edit_yaml(settings_dir / "staging.yaml", platform__ingress="internet")
    env = load_environment("staging", settings_dir)
    assert len(env.load_balancer_groups()) == 2
    assert env.cloudfront_services() == env.load_balancer_groups()[0]  # only the first one's, through CloudFront
    assert assert_every_route_reaches_its_load_balancer(env, distribution_of(env)) > 0


# --- the property: whatever builds, every route is reached ---------------------------------------

SEGMENTS = st.text("abAB09_-.", min_size=1, max_size=4)
TOKENS = st.one_of(SEGMENTS, st.just("/"), st.just("*"), st.just("?"))
PATTERNS = st.one_of(
    st.just("/*"),
    st.lists(TOKENS, min_size=1, max_size=5)
    .map(lambda tokens: "/" + "".join(tokens))
    .filter(lambda p: p.count("*") + p.count("?") <= 2 and len(p) <= 40),
)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    routes=st.lists(st.lists(PATTERNS, min_size=1, max_size=2, unique=True), min_size=1, max_size=5),
    assets_path=st.sampled_from(["/assets/*", "/static/*", "/a/*", "/_next/static/*"]),
    ingress=st.sampled_from(["cloudfront", "internet"]),
    fillers=st.lists(st.text("aA0/._-", max_size=6), min_size=1, max_size=3),
)
def test_whatever_builds_every_route_reaches_its_load_balancer(
    routes: list[list[str]], assets_path: str, ingress: str, fillers: list[str], tmp_path_factory: Any
) -> None:
    folder = tmp_path_factory.mktemp("routes") / "environments"
    shutil.copytree(SETTINGS, folder)
    services: dict[str, Any] = {"web": {"routing": {"paths": routes[0]}}}
    if len(routes) > 1:
        services["api"] = {"routing": {"paths": routes[1]}}
    for i, paths in enumerate(routes[2:]):
        services[f"r{i}"] = {
            "port": 8080,
            "cpu": 256,
            "memory": 512,
            "desired_count": 1,
            "autoscaling": {"min": 1, "max": 2},
            "routing": {"paths": paths},
        }
    edit_yaml(folder / "staging.yaml", services=services, edge__assets_path=assets_path, platform__ingress=ingress)
    try:
        env = load_environment("staging", folder)
    except SettingsError as refused:
        assert all(line.startswith(f"{folder}/staging.yaml: ") for line in refused.problems), refused.problems
        return
    config = distribution_of(env)
    assert_every_route_reaches_its_load_balancer(env, config)
    for name in env.cloudfront_services():  # and with the drawn fillers
        for route in env.service_routing(name).paths:
            for path in examples(route, tuple(fillers)):
                if not path_pattern_matches(assets_path, path):
                    assert served_by(config, path) == LOAD_BALANCER, (route, path)


# --- the hand-over: the origin name's DNS record and certificate ----------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_deploy_guide_says_the_origin_name_needs_a_record_and_the_certificate(environments, env) -> None:
    guide = BUILT.files[env]["DEPLOY.md"]
    name = environments[env].edge.origin_domain
    (line,) = [line for line in guide.splitlines() if line.startswith(f"- `{name}` is the name")]
    assert "must cover it" in line and "platform.certificate_arn" in line
    if env == "prod":  # dr.dns: the failover records of shop-prod-dns are its record
        assert "`shop-prod-dns` holds its DNS record" in line
    else:
        assert f"output `LoadBalancerDnsName` of `shop-{env}-platform`" in line


@pytest.mark.parametrize("default_to_load_balancer", [True, False])
def test_the_runbooks_replication_check_reads_a_key_the_bucket_serves(
    settings_dir: Path, default_to_load_balancer
) -> None:
    """The DR runbook checks the replication of an object CloudFront reads from the bucket: under
    the assets path when a service owns '/*' (no index.html there is known to exist), the default
    root object when the bucket is the default behaviour."""
    from templates import runbook  # noqa: PLC0415

    if not default_to_load_balancer:
        edit_yaml(settings_dir / "prod.yaml", services__web__routing={"paths": ["/shop/*"]})
    prod = load_environment("prod", settings_dir)
    assert prod.cloudfront_default_to_load_balancer() is default_to_load_balancer
    lines = runbook._replication_check(prod)
    config = distribution_of(prod)
    if default_to_load_balancer:
        prefix = lines[0].split("--prefix ")[1].split()[0]
        assert served_by(config, "/" + prefix + "logo.png") in BUCKET
        assert '--key "$key"' in lines[-1]
    else:
        key = lines[-1].split("--key ")[1].split()[0]
        assert key == config["DefaultRootObject"] and served_by(config, "/" + key) in BUCKET
