"""Every ``aws …`` command the output prints (deploy.sh, the day-2 scripts status.sh, logs.sh and
destroy.sh, DEPLOY.md, RUNBOOK.md, the release READMEs) is one the real AWS CLI accepts: parsed by
awscli's own argument parser, its API calls' parameters validated by botocore against the service
models, no network (``tests/aws_cli.py``). ``aws logs tail``, an AWS CLI v2 command the v1 parser here
lacks, is parsed against its documented synopsis instead (``V2_LOGS_TAIL``). And what a command names
exists in the output, with that name, in that region: stacks (and the outputs a command reads of
them), ECS clusters and services, Aurora clusters and global clusters, ECR repositories (in the
registry's region or one it replicates to), secrets, log groups."""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shutil
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aws_cli
import pytest
from conftest import BUILT, ENVIRONMENTS, FIXTURES, SETTINGS

import generate
from infra_templates.handover import CREDENTIALS_MARK

# One worker runs them all (make unit: --dist loadgroup), with test_template_bucket.py: each process
# builds this module's output/ and loads the AWS CLI's driver (every service's model) once.
pytestmark = pytest.mark.xdist_group("aws-cli")

# Values of the placeholders the Markdown files ask the reader to fill in.
PLACEHOLDERS = {"<tag>": "0123456789abcdef", "<COMMIT_ID>": "0123456789abcdef", "<value>": "0123456789abcdef"}
ARN = re.compile(r"^arn:aws[a-z-]*:(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):\d*:(?P<rest>.+)$")
READ_OUTPUT = re.compile(r"OutputKey=='(?P<output>\w+)'")
# var="$(aws ...)", also as the condition of an if/elif that handles its error: if ! var="$(aws ...)"
ASSIGNMENT = re.compile(r"^\s*(?:(?:el)?if\s+!\s*)?(?P<var>[A-Za-z_]\w*)=\"?\$\(\s*aws ")
# A script's variable with a default from the environment: since="${SINCE:-10m}" -> 10m.
DEFAULTED = re.compile(r"^\s*(?P<var>[a-z_]\w*)=\"\$\{[A-Z_]+:-(?P<value>[^}\"]*)\}\"\s*$")


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """output/ as ``python generate.py`` writes it, delivery folder included, from the fixture
    settings with the sample add-ons (tests/fixtures/addons/): their stacks' commands too; and
    prod's add-on that puts its api's template beyond 51,200 bytes (tests/fixtures/addons-upload/):
    its deploy command uploads through the environment's template bucket."""
    root = tmp_path_factory.mktemp("aws-commands")
    shutil.copytree(SETTINGS, root / "environments")
    shutil.copytree(FIXTURES / "addons", root / "environments" / "addons")
    shutil.copytree(FIXTURES / "addons-upload", root / "environments" / "addons", dirs_exist_ok=True)
    assert generate.run_build(None, root / "environments", root / "output", quiet=True) == 0
    return root / "output"


@dataclass
class Inventory:
    """What the output creates, by region: what a command may name."""

    stacks: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # region -> names
    templates: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (stack, region) -> body
    named: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))  # (kind, region)
    accounts: dict[str, str] = field(default_factory=dict)  # folder -> account
    services: set[str] = field(default_factory=set)
    registry: tuple[str, str] = ("", "")  # account, region
    stack_accounts: dict[tuple[str, str], str] = field(default_factory=dict)  # (stack, region) -> its account

    def has(self, kind: str, region: str, name: str) -> bool:
        return name in self.named[(kind, region)]


NAME_PROPERTIES = {
    "AWS::ECS::Cluster": ("cluster", "ClusterName"),
    "AWS::ECS::Service": ("service", "ServiceName"),
    "AWS::RDS::DBCluster": ("db-cluster", "DBClusterIdentifier"),
    "AWS::RDS::GlobalCluster": ("global-cluster", "GlobalClusterIdentifier"),
    "AWS::ECR::Repository": ("repository", "RepositoryName"),
    "AWS::SecretsManager::Secret": ("secret", "Name"),
    "AWS::Logs::LogGroup": ("log-group", "LogGroupName"),
    "AWS::S3::Bucket": ("bucket", "BucketName"),
}


def inventory(output: Path) -> Inventory:
    found = Inventory()
    for path in sorted(output.glob("*/manifest.json")):
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if "account_id" in manifest:
            found.accounts[path.parent.name] = manifest["account_id"]
        for stack in manifest["stacks"]:
            name, region = stack["name"], stack["region"]
            found.stacks[region].add(name)
            body = json.loads((path.parent / stack["templates"]["json"]).read_text(encoding="utf-8"))
            found.templates[(name, region)] = body
            for resource in body.get("Resources", {}).values():
                kind, prop = NAME_PROPERTIES.get(resource["Type"], ("", ""))
                value = resource.get("Properties", {}).get(prop)
                if kind and isinstance(value, str):
                    found.named[(kind, region)].add(value)
                found.named[("secret", region)] |= _secret_names_read(resource)
                if resource["Type"] == "AWS::ECR::Repository" and isinstance(value, str):
                    found.services.add(value.rsplit("/", 1)[-1])
                    # the project's stacks are described by every manifest: the project's own has its account
                    if path.parent.name == "project":
                        found.registry = (manifest["account_id"], region)
    found.stack_accounts = _stack_accounts(output)
    # ECR replicates each repository to the destinations of the registry's replication rules.
    for (_, region), body in list(found.templates.items()):
        for resource in body.get("Resources", {}).values():
            if resource["Type"] != "AWS::ECR::ReplicationConfiguration":
                continue
            for rule in resource["Properties"]["ReplicationConfiguration"]["Rules"]:
                for destination in rule["Destinations"]:
                    found.named[("repository", destination["Region"])] |= found.named[("repository", region)]
    return found


def _stack_accounts(output: Path) -> dict[tuple[str, str], str]:
    """Each stack's account: the account of the folder its templates are in (the project's stacks,
    listed by every manifest, are the project's; a DR partner's are in the same account, by rule)."""
    found: dict[tuple[str, str], str] = {}
    for path in sorted(output.glob("*/manifest.json")):
        manifest = json.loads(path.read_text(encoding="utf-8"))
        for stack in manifest["stacks"]:
            if path.parent.name == "project" or not stack["templates"]["json"].startswith("../project/"):
                found.setdefault((stack["name"], stack["region"]), manifest["account_id"])
    return found


def _secret_names_read(resource: dict[str, Any]) -> set[str]:
    """The secrets a task definition's containers read, by name without their suffix: the deployer
    creates them by that name (DEPLOY.md, "Secrets and parameters"), so a command may name them."""
    found = set()
    for container in resource.get("Properties", {}).get("ContainerDefinitions", []):
        for secret in container.get("Secrets", []):
            if complete := re.search(r":secret:([\w/+=.@-]+?)-[A-Za-z0-9]{6}\b", json.dumps(secret.get("ValueFrom"))):
                found.add(complete[1])
    return found


def _output_value(inv: Inventory, stack: str, region: str, output: str) -> tuple[str | None, str]:
    """What a ``describe-stacks … OutputKey=='X'`` reads: (a plausible value, the problem if any)."""
    body = inv.templates.get((stack, region))
    if body is None:
        return None, f"reads stack {stack} in {region}, which the output does not deploy there"
    declared = body.get("Outputs", {}).get(output)
    if declared is None:
        return None, f"reads output {output} of {stack}, which it does not have"
    value = declared["Value"]
    if isinstance(value, dict) and "Ref" in value:  # a named resource: its name
        resource = body["Resources"].get(value["Ref"], {})
        _, prop = NAME_PROPERTIES.get(resource.get("Type", ""), ("", ""))
        name = resource.get("Properties", {}).get(prop)
        if isinstance(name, str):
            return name, ""
    return f"{output.lower()}-value", ""


@dataclass(frozen=True)
class Printed:
    file: Path
    line: int
    command: str  # as printed
    argv: list[str]  # with variables and placeholders replaced
    assigns: str | None  # the shell variable the command's output is assigned to
    account: str = ""  # the account whose credentials run it: the folder's, or a Markdown block's CREDENTIALS_MARK


def printed_commands(output: Path, inv: Inventory) -> Iterator[tuple[Printed, str]]:
    """Every printed command of every file, with the problem of replacing its variables if any."""
    files = [
        *sorted(output.glob("*/deploy.sh")),
        *sorted(output.glob("*/status.sh")),
        *sorted(output.glob("*/logs.sh")),
        *sorted(output.glob("*/destroy.sh")),
        *sorted(output.glob("*/DEPLOY.md")),
        *sorted(output.glob("*/RUNBOOK.md")),
        *sorted(output.glob("delivery/*/README.md")),
    ]
    assert files, f"no file with commands under {output}"
    for file in files:
        folder_account = inv.accounts.get(file.parent.name, inv.registry[0])  # delivery/: the registry's
        variables = {"here": str(file.parent), "account": folder_account}
        variables["IMAGE_TAG"] = PLACEHOLDERS["<tag>"]
        credentials = folder_account
        for number, line in aws_cli.logical_lines(file.read_text(encoding="utf-8")):
            if defaulted := DEFAULTED.match(line):
                variables[defaulted["var"]] = defaulted["value"]
            if line.strip().startswith(CREDENTIALS_MARK) and file.suffix == ".md":
                credentials = line.strip().removeprefix(CREDENTIALS_MARK).strip()
            elif line.strip().startswith("```"):  # a code block's end: the folder's credentials again
                credentials = folder_account
            assigned = ASSIGNMENT.match(line)
            for command in aws_cli.commands(line):
                text, problem = _substitute(command, variables, inv)
                argv = aws_cli.split(text) if not problem else []
                printed = Printed(file, number, command, argv, assigned["var"] if assigned else None, credentials)
                yield printed, problem
                if assigned and not problem:
                    variables[assigned["var"]] = _assigned_value(printed, inv)


def _substitute(command: str, variables: dict[str, str], inv: Inventory) -> tuple[str, str]:
    text = command.replace('"${changeset[@]}"', "--no-fail-on-empty-changeset")
    text = text.replace("shop/<service>", f"shop/{sorted(inv.services)[0]}")  # any service's repository
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    if "<export>" in text:
        text = text.replace("<export>", "any-export")
    left = re.findall(r"<[A-Za-z_-]+>", text)
    if left:
        return text, f"placeholder(s) {left} without a test value"
    unknown: list[str] = []

    def value(match: re.Match[str]) -> str:
        name = match["name"] or match["braced"]
        if name.startswith("IMAGE_TAG_") and name not in variables:  # deploy.sh: a service's first tag
            return PLACEHOLDERS["<tag>"]
        if name not in variables:
            unknown.append(name)
            return ""
        return variables[name]

    text = re.sub(r"\$(?:\{(?P<braced>\w+)\}|(?P<name>\w+))", value, text)
    return text, f"uses ${unknown[0]}, set by nothing before it" if unknown else ""


def _assigned_value(printed: Printed, inv: Inventory) -> str:
    result = _run(printed.argv)
    call = result.calls[-1] if result.calls else None
    read = READ_OUTPUT.search(printed.command)
    if call is None or call.operation != "DescribeStacks" or read is None or call.region is None:
        return f"{printed.assigns}-value"
    value, _ = _output_value(inv, call.params.get("StackName", ""), call.region, read["output"])
    return value or f"{printed.assigns}-value"


_runs: dict[tuple[str, ...], aws_cli.Result] = {}


def _run(argv: list[str]) -> aws_cli.Result:
    key = tuple(argv)
    if key not in _runs:
        _runs[key] = _logs_tail(argv) if argv[:2] == ["logs", "tail"] else aws_cli.run(argv)
    return _runs[key]


def _v2_logs_tail_parser() -> argparse.ArgumentParser:
    """``aws logs tail`` as the AWS CLI v2 Command Reference documents it ("logs tail", Synopsis:
    https://docs.aws.amazon.com/cli/latest/reference/logs/tail.html): a group name, then its own
    options and the global ones a script may pass. An unknown option, or a --format outside the three
    documented, is refused as the CLI refuses it."""
    parser = argparse.ArgumentParser(prog="aws logs tail", add_help=False, exit_on_error=False, allow_abbrev=False)
    parser.add_argument("group_name")
    parser.add_argument("--since")
    parser.add_argument("--follow", action="store_true")
    parser.add_argument("--format", choices=("detailed", "short", "json"))
    parser.add_argument("--filter-pattern")
    parser.add_argument("--log-stream-names", nargs="+")
    parser.add_argument("--log-stream-name-prefix")
    parser.add_argument("--region", required=True)  # a script never relies on the machine's default region
    parser.add_argument("--profile")
    return parser


V2_LOGS_TAIL = _v2_logs_tail_parser()


def _logs_tail(argv: list[str]) -> aws_cli.Result:
    """``logs tail`` parsed against its v2 synopsis: one call (FilterLogEvents, which it pages
    through) with the group name and region, or refused."""
    try:
        args, unknown = V2_LOGS_TAIL.parse_known_args(argv[2:])
    except (argparse.ArgumentError, SystemExit) as error:
        return aws_cli.Result("exit 2", [], f"aws logs tail: {error}")
    if unknown:
        return aws_cli.Result("exit 2", [], f"aws logs tail: unknown options: {unknown}")
    if args.since and not re.fullmatch(r"\d+[smhdw]|\d{4}-\d\d-\d\d.*", args.since):
        return aws_cli.Result("exit 2", [], f"aws logs tail: --since {args.since} is not a time")
    call = aws_cli.Call("logs", "FilterLogEvents", {"logGroupName": args.group_name}, args.region)
    return aws_cli.Result(0, [call], "")


def names_problems(printed: Printed, call: aws_cli.Call, inv: Inventory, created: set[str]) -> Iterator[str]:
    """What one validated call names that the output does not create (there, by that name)."""
    region = call.region or ""
    if region not in inv.stacks:
        yield f"acts in {region}, where the output deploys nothing"
    checker = {
        "cloudformation": _cloudformation_names,
        "ecs": _ecs_names,
        "rds": _rds_names,
        "ecr": _ecr_names,
        "secretsmanager": _secret_names,
        "logs": _log_group_names,
        "s3": _bucket_names,
    }.get(call.service)
    if checker is not None:
        yield from checker(printed, call.params, region, inv, created)


def _cloudformation_names(
    printed: Printed, params: dict[str, Any], region: str, inv: Inventory, _: set[str]
) -> Iterator[str]:
    stack = params.get("StackName")
    if stack is None:
        return
    if stack not in inv.stacks[region]:
        where = sorted(r for r, names in inv.stacks.items() if stack in names)
        yield f"names stack {stack} in {region}; the output deploys it in {where or 'no region'}"
        return
    read = READ_OUTPUT.search(printed.command)
    if read and "describe-stacks" in printed.command:
        _, problem = _output_value(inv, stack, region, read["output"])
        if problem:
            yield problem


def _bucket_names(printed: Printed, params: dict[str, Any], region: str, inv: Inventory, _: set[str]) -> Iterator[str]:
    """``deploy --s3-bucket`` uploads the template to a bucket the output names, in the stack's
    region (the CLI's TemplateURL is the path-style URL of that region's S3 endpoint). Other
    commands name buckets through a stack's outputs (checked as such)."""
    bucket = params.get("Bucket")
    if "cloudformation deploy" in printed.command and bucket is not None and not inv.has("bucket", region, bucket):
        yield f"names bucket {bucket} in {region}, which the output does not create there"


def _ecs_names(_: Printed, params: dict[str, Any], region: str, inv: Inventory, __: set[str]) -> Iterator[str]:
    for key in ("cluster", "service"):
        if key in params and not inv.has(key, region, params[key]):
            yield f"names ECS {key} {params[key]} in {region}; the output's are {sorted(inv.named[(key, region)])}"


def _rds_names(
    printed: Printed, params: dict[str, Any], region: str, inv: Inventory, created: set[str]
) -> Iterator[str]:
    for key in ("DBClusterIdentifier", "TargetDbClusterIdentifier"):
        if key in params:
            yield from _rds_cluster(params[key], region, inv)
    global_ids = {name for (kind, _), names in inv.named.items() if kind == "global-cluster" for name in names}
    if "GlobalClusterIdentifier" in params and params["GlobalClusterIdentifier"] not in global_ids:
        yield f"names global cluster {params['GlobalClusterIdentifier']}, which the output does not create"
    instance = params.get("DBInstanceIdentifier")
    if instance and "create-db-instance" in printed.command:
        created.add(instance)
    elif instance and instance not in created:
        yield f"names DB instance {instance}, which nothing before it creates"


def _ecr_names(_: Printed, params: dict[str, Any], region: str, inv: Inventory, __: set[str]) -> Iterator[str]:
    repository = params.get("repositoryName")
    if repository and not inv.has("repository", region, repository):
        yield f"names repository {repository} in {region}, which is not there (nor replicated there)"
    registry = params.get("registryId")
    if registry and registry != inv.registry[0]:
        yield f"names registry {registry}; the images are in {inv.registry[0]}"


def _secret_names(_: Printed, params: dict[str, Any], region: str, inv: Inventory, __: set[str]) -> Iterator[str]:
    secret = params.get("SecretId")
    if secret and not secret.startswith("arn:") and not inv.has("secret", region, secret):
        yield f"names secret {secret} in {region}, which the output does not create there"


def _log_group_names(_: Printed, params: dict[str, Any], region: str, inv: Inventory, __: set[str]) -> Iterator[str]:
    group = params.get("logGroupName")
    if group and not inv.has("log-group", region, group):
        yield f"names log group {group} in {region}, which the output does not create there"


def _rds_cluster(value: str, region: str, inv: Inventory) -> Iterator[str]:
    arn = ARN.match(value)
    name, where = (arn["rest"].removeprefix("cluster:"), arn["region"]) if arn else (value, region)
    if not inv.has("db-cluster", where, name):
        yield f"names Aurora cluster {name} in {where}, which the output does not create there"


def test_every_printed_aws_command_is_accepted_and_names_what_exists(
    output: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in aws_cli.CLEAN_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    inv = inventory(output)
    problems: list[str] = []
    seen = 0
    created: dict[Path, set[str]] = defaultdict(set)
    for printed, problem in printed_commands(output, inv):
        where = f"{printed.file.relative_to(output)}:{printed.line}: {printed.command[:90]}"
        seen += 1
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        monkeypatch.chdir(printed.file.parent)  # DEPLOY.md names templates relative to its folder
        for arg in printed.argv:  # a value read from a file (file://), as the deployer types it first
            if arg.startswith("file://"):
                (printed.file.parent / arg.removeprefix("file://")).write_text(PLACEHOLDERS["<value>"])
        result = _run(printed.argv)
        if not result.accepted:
            problems.append(f"{where}: the AWS CLI refuses it ({result.status}): {result.stderr.strip()[-400:]}")
            continue
        problems.extend(
            f"{where}: {p}" for call in result.calls for p in names_problems(printed, call, inv, created[printed.file])
        )
    assert seen > 100, f"found only {seen} commands: is the extraction broken?"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("argv", "accepted"),
    [
        (["ecs", "update-service", "--region", "eu-west-1", "--cluster", "c", "--service", "s"], True),
        (["ecs", "update-service", "--region", "eu-west-1", "--cluster", "c", "--servic", "s"], False),  # ambiguous
        (["ecr", "describe-images", "--repository-name", "r", "--image-ids", "imageTg=x"], False),  # botocore
        (["rds", "wait", "db-instance-available", "--db-instance-identifier", "x"], True),
        (["cloudformation", "describe-stacks", "--stack-name", "x", "--query", "Stacks[0]", "--output", "txt"], False),
    ],
)  # fmt: skip
def test_the_cli_validator_refuses_what_the_cli_refuses(
    argv: list[str], accepted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in aws_cli.CLEAN_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    assert aws_cli.run(argv).accepted is accepted


def test_the_kept_top_level_parser_parses_as_a_new_one() -> None:
    """aws_cli keeps the driver's top-level parser for every run (_one_top_level_parser): it parses
    each command line, top-level options and refusals included, as the one a new ``aws`` makes."""
    driver, _ = aws_cli._driver()
    table = driver._get_command_table()
    kept, new = driver._create_parser(table), type(driver)._create_parser(driver, table)
    assert kept is driver._create_parser(table) and kept is not new
    for argv in (
        ["ecs", "update-service", "--cluster", "c"],
        ["--region", "eu-west-1", "--output", "text", "cloudformation", "describe-stacks", "--query", "Stacks[0]"],
        ["s3", "cp", "a", "s3://b/c", "--no-verify-ssl", "--endpoint-url", "https://x", "--debug"],
        ["--output", "txt", "sts", "get-caller-identity"],
        ["no-such-service", "x"],
    ):
        parses = []
        for parser in (kept, new):
            try:
                parsed, rest = parser.parse_known_args(argv)
                parses.append((vars(parsed), rest))
            except SystemExit as refused:
                parses.append(("exit", refused.code))
        assert parses[0] == parses[1], argv


@pytest.mark.parametrize(
    ("argv", "accepted"),
    [
        (["logs", "tail", "g", "--region", "eu-west-1", "--follow", "--since", "10m", "--format", "short"], True),
        (["logs", "tail", "g", "--region", "eu-west-1", "--format", "brief"], False),  # not a documented format
        (["logs", "tail", "g", "--region", "eu-west-1", "--folow"], False),  # unknown option
        (["logs", "tail", "--region", "eu-west-1"], False),  # no group
        (["logs", "tail", "g", "--region", "eu-west-1", "--since", "soon"], False),
    ],
)  # fmt: skip
def test_the_logs_tail_synopsis_refuses_what_the_v2_cli_refuses(argv: list[str], accepted: bool) -> None:
    assert _logs_tail(argv).accepted is accepted


def test_the_day2_scripts_are_checked_and_name_each_service_log_group(output: Path) -> None:
    """logs.sh tails each service's own log group (in the inventory), so the test above covers it."""
    inv = inventory(output)
    text = (output / "prod" / "logs.sh").read_text(encoding="utf-8")
    tails = [c for _, line in aws_cli.logical_lines(text) for c in aws_cli.commands(line) if " logs tail " in c]
    assert len(tails) == len(BUILT.environments["prod"].services) >= 2
    for command in tails:
        group = aws_cli.split(command)[2]
        assert inv.has("log-group", "eu-west-1", group), command


def test_extraction_joins_continued_lines_and_stops_where_the_shell_does() -> None:
    text = 'x="$(aws cloudformation describe-stacks \\\n  --stack-name a --query "S[?K==\'v\'].O" --output text)"\n'
    [(number, line)] = list(aws_cli.logical_lines(text))
    assert number == 1
    assert list(aws_cli.commands(line)) == [
        "aws cloudformation describe-stacks --stack-name a --query \"S[?K=='v'].O\" --output text"
    ]
    assert list(aws_cli.commands("command -v aws >/dev/null || exit 1")) == []
    assert list(aws_cli.commands("aws ecr get-login-password --region r | docker login")) == [
        "aws ecr get-login-password --region r"
    ]
    assert list(aws_cli.commands('x="$(aws sts get-caller-identity --output text 2>&1)"')) == [
        "aws sts get-caller-identity --output text"
    ]


def test_the_libyaml_parse_of_a_template_is_awscli_s_own(output: Path) -> None:
    """aws_cli parses the templates ``cloudformation deploy`` reads with libyaml; awscli's own
    pure-Python parse gives the same data (short-form intrinsics and all) on a shipped template."""
    from awscli.customizations.cloudformation import yamlhelper  # noqa: PLC0415 - the CLI's own

    path = max(output.glob("*/*.yaml"), key=lambda p: p.stat().st_size)  # the largest: the most to differ in
    text = path.read_text(encoding="utf-8")
    assert "!Sub" in text or "!GetAtt" in text or "!Ref" in text  # short forms to construct
    ours, theirs = aws_cli.yaml_parse(text), yamlhelper.yaml_parse(text)
    assert ours == theirs
    assert json.dumps(ours) == json.dumps(theirs)  # key order too (OrderedDicts compare by order as well)
    assert aws_cli.yaml_parse('{"a": [1]}') == yamlhelper.yaml_parse('{"a": [1]}')  # JSON first, as awscli


def test_a_deploy_uploading_to_a_bucket_the_output_lacks_is_reported(output: Path) -> None:
    inv = inventory(output)
    command = "aws cloudformation deploy --stack-name shop-prod-svc-api --region eu-west-1 --s3-bucket x"
    printed = Printed(output / "prod" / "deploy.sh", 1, command, aws_cli.split(command), None)
    for bucket, found in (("shop-prod-templates-333333333333", []), ("shop-prod-templates-nope", ["names bucket"])):
        call = aws_cli.Call("s3", "PutObject", {"Bucket": bucket, "Key": "templates/x"}, "eu-west-1")
        problems = list(names_problems(printed, call, inv, set()))
        assert [p[: len("names bucket")] for p in problems] == found, problems


# --- calls into another account -----------------------------------------------------------------
# A request to a resource of another account is allowed only where the resource's own policy allows
# the caller the action (IAM User Guide, "Cross account resource access in IAM"; for ECR: "Private
# repository policies in Amazon ECR", both the repository policy and the caller's IAM policy must
# allow it). A service without resource-based policies (CloudFormation: IAM User Guide, "AWS services
# that work with IAM") cannot be called across accounts at all, whatever the credentials may do.
ACCOUNT_ARN = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(?P<account>\d{12}):")


def _resolved(value: Any, account: str) -> Any:
    """A template's policy with its ``Fn::Sub`` of pseudo parameters resolved, as deployed in ``account``."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        value = value["Fn::Sub"]
    if isinstance(value, str):
        return value.replace("${AWS::Partition}", "aws").replace("${AWS::AccountId}", account)
    if isinstance(value, dict):
        return {k: _resolved(v, account) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v, account) for v in value]
    return value


def repository_policies(inv: Inventory) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """``{(region, repository): statements}``: each repository's ``RepositoryPolicyText`` where the
    output creates it, and in a region ECR replicates to, the ``RepositoryPolicy`` of the repository
    creation template whose prefix covers it (CloudFormation User Guide,
    AWS::ECR::RepositoryCreationTemplate: Prefix, RepositoryPolicy)."""
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    names = {n for (kind, _), ns in inv.named.items() if kind == "repository" for n in ns}
    for (stack, region), body in inv.templates.items():
        account = inv.stack_accounts.get((stack, region), "")
        for resource in body.get("Resources", {}).values():
            properties = _resolved(resource.get("Properties", {}), account)
            if resource["Type"] == "AWS::ECR::Repository" and "RepositoryPolicyText" in properties:
                found[(region, properties["RepositoryName"])] = properties["RepositoryPolicyText"]["Statement"]
            if resource["Type"] == "AWS::ECR::RepositoryCreationTemplate" and "RepositoryPolicy" in properties:
                prefix, statements = properties["Prefix"], json.loads(properties["RepositoryPolicy"])["Statement"]
                for name in names:
                    if prefix == "ROOT" or name.startswith(f"{prefix}/"):
                        found.setdefault((region, name), statements)
    return found


def _matches(patterns: Any, value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in ([patterns] if isinstance(patterns, str) else patterns))


def policy_allows(statements: list[dict[str, Any]], action: str, caller: str) -> bool:
    """Whether a resource policy allows ``caller``'s account the action: an Allow naming the account
    (its root, or "*") and the action, without a condition (none can be judged here), and no Deny."""
    principal = f"arn:aws:iam::{caller}:root"

    def applies(statement: dict[str, Any]) -> bool:
        who = statement.get("Principal", {})
        who = who.get("AWS", []) if isinstance(who, dict) else who
        return who == "*" or _matches(who, principal)

    relevant = [s for s in statements if applies(s) and _matches(s.get("Action", []), action)]
    return any(s["Effect"] == "Allow" and "Condition" not in s for s in relevant) and not any(
        s["Effect"] == "Deny" for s in relevant
    )


def _owners(call: aws_cli.Call, caller: str, inv: Inventory) -> set[str]:
    """The accounts whose resources a call acts on: ECR's ``registryId``, a stack's account, an ARN's."""
    owners = set()
    if call.service == "ecr":
        owners.add(call.params.get("registryId", caller))
    if call.service == "cloudformation" and "StackName" in call.params:
        owners.add(inv.stack_accounts.get((call.params["StackName"], call.region or ""), caller))
    texts = [v for v in call.params.values() if isinstance(v, str)]
    owners |= {m["account"] for m in map(ACCOUNT_ARN.match, texts) if m}
    return owners


def cross_account_problems(printed: Printed, call: aws_cli.Call, inv: Inventory, policies: dict) -> Iterator[str]:
    caller = printed.account
    for owner in sorted(_owners(call, caller, inv) - {caller}):
        action = f"{call.service}:{call.operation}"
        if call.service == "ecr":
            key = (call.region or "", call.params.get("repositoryName", ""))
            if key not in policies:
                yield f"{action} on {key[1]} in account {owner}, {key[0]}: no repository policy there in the output"
            elif not policy_allows(policies[key], action, caller):
                yield (
                    f"{action} on {key[1]} in account {owner}, {key[0]}, with the credentials of account {caller}: "
                    "the repository policy does not allow it"
                )
        else:
            yield (
                f"{action} on a resource of account {owner} with the credentials of account {caller}: "
                f"{call.service} has no resource policy in the output that could allow it"
            )


def test_every_call_into_another_account_is_one_its_resource_policy_allows(
    output: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each printed command runs with the credentials of its folder's account (deploy.sh and the day-2
    scripts check they are signed in there; DEPLOY.md and RUNBOOK.md say so), or of the account a
    Markdown block names (``CREDENTIALS_MARK``). A call that reaches another account's resource must
    be one that resource's policy, as the output deploys it, allows that account: deploy.sh's image
    check (ecr:BatchGetImage, granted; ecr:DescribeImages was not) and the runbook's, never a
    CloudFormation call on the project's stacks from an environment's account."""
    for key, value in aws_cli.CLEAN_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    inv = inventory(output)
    policies = repository_policies(inv)
    assert policies, "no repository policy found in the output"
    problems, crossing = [], []
    for printed, problem in printed_commands(output, inv):
        if problem:
            continue  # reported by the test above
        monkeypatch.chdir(printed.file.parent)
        for call in _run(printed.argv).calls:
            where = f"{printed.file.relative_to(output)}:{printed.line}"
            found = list(cross_account_problems(printed, call, inv, policies))
            problems += [f"{where}: {p}" for p in found]
            if _owners(call, printed.account, inv) - {printed.account}:
                crossing.append(f"{where}: {call.service}:{call.operation}")
    # the image checks of every environment's deploy.sh and the DR runbook's cross into the registry
    assert sum("deploy.sh" in c and "ecr:BatchGetImage" in c for c in crossing) >= len(ENVIRONMENTS), crossing
    assert any("RUNBOOK.md" in c and "ecr:BatchGetImage" in c for c in crossing), crossing
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("file", "command", "problem"),
    [
        ("dev/deploy.sh", "aws ecr describe-images --registry-id 444444444444 --repository-name shop/api "
         "--image-ids imageTag=x --region eu-west-1", "the repository policy does not allow it"),
        ("dr/RUNBOOK.md", "aws ecr describe-image-replication-status --registry-id 444444444444 --region eu-west-1 "
         "--repository-name shop/api --image-id imageTag=x", "the repository policy does not allow it"),
        ("dev/status.sh", "aws cloudformation describe-stacks --stack-name shop-registry --region eu-west-1",
         "cloudformation has no resource policy"),
        ("dev/deploy.sh", "aws ecr batch-get-image --registry-id 444444444444 --repository-name shop/api "
         "--image-ids imageTag=x --region eu-west-1", ""),
        ("dr/deploy.sh", "aws ecr batch-get-image --registry-id 444444444444 --repository-name shop/api "
         "--image-ids imageTag=x --region eu-central-1", ""),  # the replica: its creation template's policy
        ("project/deploy.sh", "aws cloudformation describe-stacks --stack-name shop-registry --region eu-west-1", ""),
    ],
)  # fmt: skip
def test_the_cross_account_check_refuses_what_the_resource_policy_refuses(
    output: Path, monkeypatch: pytest.MonkeyPatch, file: str, command: str, problem: str
) -> None:
    """The check fails the commands the trial found (describe-images into the registry, status.sh's
    describe-stacks of a project stack) and passes the pull's own action, in both regions."""
    for key, value in aws_cli.CLEAN_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    inv = inventory(output)
    folder = file.split("/", 1)[0]
    argv = aws_cli.split(command)
    printed = Printed(output / file, 1, command, argv, None, inv.accounts[folder])
    found = [
        p for call in _run(argv).calls for p in cross_account_problems(printed, call, inv, repository_policies(inv))
    ]
    assert (problem in found[0]) if problem else not found, found
