"""Day-2 scripts of one output folder, beside ``deploy.sh``: ``status.sh``, ``logs.sh``, ``destroy.sh``.

Like ``deploy.sh`` they are derived from the folder's deployment plan (``handover.plan``) and the
templates, name every stack, region, log group and cluster literally (no lookup by pattern), and
need only the AWS CLI:

- ``status.sh``: every stack of the manifest in its order (the project's and a DR partner's too,
  marked), its status (``describe-stacks``), a drift hint (the stack's last drift detection:
  ``DriftInformation.StackDriftStatus``; CloudFormation User Guide, "Detect drift on an entire
  CloudFormation stack") and, for a stack in a failed or rolled-back state, its last failed event.
  Exit 0 when every stack of this folder is ``*_COMPLETE`` without rollback, 1 otherwise.
- ``logs.sh SERVICE``: ``aws logs tail <group> --follow`` on the service's log group (the group its
  task definition's ``awslogs-group`` names); ``aws logs tail`` is an AWS CLI v2 command (AWS CLI
  Command Reference, "logs tail").
- ``destroy.sh``: deletes this folder's own stacks in reverse deploy order (never the project's
  stacks, nor a DR partner's, which their own folders delete). Before anything is deleted it states
  which stateful resources CloudFormation keeps (``DeletionPolicy`` Retain / RetainExceptOnCreate,
  or a final snapshot with Snapshot: CloudFormation User Guide, "DeletionPolicy attribute") and
  which are lost with their stack; it refuses while termination protection (CloudFormation User
  Guide, "Protect a stack from being deleted") or a resource's deletion protection (an Aurora
  cluster's or global database's ``DeletionProtection``; the load balancer's
  ``deletion_protection.enabled``) would stop the
  deletion half-way, printing the command that lifts each; and it asks for the environment's name
  typed back unless ``CONFIRM=<name>`` is set.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra_templates.stateful import kept_resources, stateful_resources

STATUS = "status.sh"
LOGS = "logs.sh"
DESTROY = "destroy.sh"
SCRIPTS = (STATUS, LOGS, DESTROY)

# Statuses in which a stack is up and consistent (CloudFormation User Guide, "Stack status codes").
HEALTHY = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE")


@dataclass(frozen=True)
class Stack:
    """What the day-2 scripts need of one stack of the plan."""

    name: str
    region: str
    own: bool  # deployed (and deleted) from this folder
    note: str  # "" | "project stack" | "dr's stack"
    body: Mapping[str, Any]
    account: str = ""  # the account it is deployed in, where it is not the folder's ("": the folder's)
    folder: str = ""  # the output folder its templates (and its own status.sh) are in


@dataclass(frozen=True)
class ServiceLog:
    service: str
    stack: str
    region: str
    group: str
    kind: str = "service"  # web, backend, worker or job: read from what the stack holds (see _kind)


@dataclass(frozen=True)
class Protection:
    """A resource whose deletion protection would stop ``delete-stack``: how to read and lift it."""

    stack: str
    region: str
    what: str  # "Aurora cluster shop-prod"
    check: list[str]  # shell lines that set protected=true when it is on
    lift: str  # the command that turns it off


# What a script's exit status means where the AWS CLI's own status passes through (set -e stops at the
# first failed command with its status): AWS CLI User Guide, "Command line return codes".
CLI_STATUS = (
    "the AWS CLI's status of the command that failed, e.g. 254 (AWS refused the request), 255 (the command "
    'failed); AWS CLI User Guide, "Command line return codes"'
)
# The variables of the AWS CLI itself that pick the credentials (each command names its region).
CLI_VARIABLES = (
    "AWS_PROFILE...",
    "the AWS CLI's own: the credentials it signs in with (every command names its region itself)",
)


def stack_absent(stack: str) -> str:
    """The shell pattern of the AWS CLI's error when ``describe-stacks`` names a stack that does not
    exist: CloudFormation's ``ValidationError`` (CloudFormation API Reference, DescribeStacks: "If the
    stack doesn't exist, a ValidationError is returned"), whose message is "Stack with id STACK does not
    exist" (boto/boto3#2807 quotes the service's answer). Only this answer means "not deployed": any
    other error (AccessDenied, expired credentials, throttling, no network) says nothing about the
    stack, and reading it as absent would let destroy.sh drop records and status.sh report nothing."""
    return f'*"(ValidationError)"*"Stack with id {stack} does not exist"*'


# --help or -h wherever it is among the arguments: the help, exit 0 (GNU Coding Standards, "--help").
HELP_ANYWHERE = [
    'for arg in "$@"; do',
    '  case "$arg" in -h|--help) usage; exit 0 ;; esac',
    "done",
]


def signed_in_check(script: str, title: str, account: str, consequence: str, var: str = "signed_in") -> list[str]:
    """The shell lines every script runs before its first other AWS call: signed in (``aws sts
    get-caller-identity``, which needs no permission: STS API Reference, GetCallerIdentity), and to
    ``account``, the one the folder's stacks live in. With other credentials every answer about a stack
    would be another account's: "does not exist" everywhere. ``consequence``: what that means for this
    script ("nothing was changed"); ``var``: the shell variable left holding the account."""
    return [
        f'{var}="$(aws sts get-caller-identity --query Account --output text)" || '
        f"{{ echo '{script}: could not ask AWS which account this is (STS GetCallerIdentity failed, its error "
        "above: no or expired credentials, a throttled or unreachable endpoint): "
        f"{consequence}' >&2; exit 1; }}",
        f'if [[ "${var}" != {shlex.quote(account)} ]]; then',
        f'  echo "{script}: signed in to account ${var}, but {title} lives in account {account}: sign in to '
        f'{account}, then run again; {consequence}" >&2',
        "  exit 1",
        "fi",
    ]


def help_lines(
    usage: str,
    about: Sequence[str],
    options: Sequence[tuple[str, str]],
    variables: Sequence[tuple[str, str]],
    statuses: Sequence[tuple[str, str]],
) -> list[str]:
    """The lines of a script's ``usage`` function: ``--help``/``-h`` prints it on stdout and exits 0
    (the GNU Coding Standards' "--help"), a wrong argument prints the usage line on stderr and exits 2.
    ``usage`` starts with the script's name (``./status.sh``); ``options``, ``variables`` and
    ``statuses`` are (name, meaning) pairs."""
    script = usage.split(maxsplit=1)[0].removeprefix("./")
    width = max(len(n) for n, _ in (*options, *variables, CLI_VARIABLES)) + 2
    text = [f"Usage: {usage}", "", *about, ""]
    if options:
        text += ["Options:", *(f"  {name:<{width}}{meaning}" for name, meaning in options), ""]
    text += ["Environment variables it reads:"]
    text += [f"  {name:<{width}}{meaning}" for name, meaning in (*variables, CLI_VARIABLES)]
    text += ["", "Exit status:", *(f"  {code:<7}{meaning}" for code, meaning in statuses)]
    return [
        f"# usage: {script}'s help (--help, -h).",
        "usage() {",
        "  cat <<'EOF'",
        *text,
        "EOF",
        "}",
    ]


def _literal_name(body: Mapping[str, Any], value: Any, prop: str) -> str | None:
    """A literal name, or the literal ``prop`` of the resource a ``Ref`` points at."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Ref"}:
        target = body.get("Resources", {}).get(value["Ref"], {})
        name = target.get("Properties", {}).get(prop)
        return name if isinstance(name, str) else None
    return None


def service_logs(stacks: list[Stack]) -> list[ServiceLog]:
    """Each ECS service of this folder's stacks and the log group its containers write to."""
    found: dict[str, ServiceLog] = {}
    for stack in (s for s in stacks if s.own):
        resources = stack.body.get("Resources", {})
        names = [
            r["Properties"]["ServiceName"]
            for r in resources.values()
            if r.get("Type") == "AWS::ECS::Service" and isinstance(r.get("Properties", {}).get("ServiceName"), str)
        ]
        for resource in resources.values():
            if resource.get("Type") != "AWS::ECS::TaskDefinition":
                continue
            for container in resource.get("Properties", {}).get("ContainerDefinitions", []):
                options = container.get("LogConfiguration", {}).get("Options", {})
                group = _literal_name(stack.body, options.get("awslogs-group"), "LogGroupName")
                service = names[0] if names else container.get("Name")
                if group and isinstance(service, str):
                    found.setdefault(service, ServiceLog(service, stack.name, stack.region, group, _kind(resources)))
    return [found[name] for name in sorted(found)]


def _kind(resources: Mapping[str, Any]) -> str:
    """The service kind (README, "Service kinds") a stack's resources show: a ``job`` is run by an
    EventBridge Scheduler schedule and has no ECS service; a ``web`` service sits behind the load
    balancer; a ``worker`` owns its SQS queue; a ``backend`` is reached through Service Connect."""
    types = {r.get("Type") for r in resources.values()}
    services = [r.get("Properties", {}) for r in resources.values() if r.get("Type") == "AWS::ECS::Service"]
    if "AWS::Scheduler::Schedule" in types and not services:
        return "job"
    if any(p.get("LoadBalancers") for p in services):
        return "web"
    if "AWS::SQS::Queue" in types:
        return "worker"
    if any(p.get("ServiceConnectConfiguration") for p in services):
        return "backend"
    return "service"


@dataclass(frozen=True)
class _RdsKind:
    """How destroy.sh reads and lifts the ``DeletionProtection`` of one RDS resource type."""

    what: str  # "Aurora cluster"
    id_property: str  # the template property that names it
    describe: str  # "describe-db-clusters --db-cluster-identifier"
    query: str  # "DBClusters[0].DeletionProtection"
    not_found: str  # the RDS error that means there is none (and so no protection)
    lift: str  # "modify-db-cluster --db-cluster-identifier {name} --no-deletion-protection --apply-immediately"


# RDS API Reference, DescribeDBClusters and DescribeGlobalClusters, Errors: DBClusterNotFoundFault and
# GlobalClusterNotFoundFault, the one answer each that means there is nothing to protect; a global
# database's own protection stops its stack's delete as the cluster's does ("The global database
# cluster can't be deleted when deletion protection is enabled": ModifyGlobalCluster).
_RDS_PROTECTED = {
    "AWS::RDS::DBCluster": _RdsKind(
        "Aurora cluster",
        "DBClusterIdentifier",
        "describe-db-clusters --db-cluster-identifier",
        "DBClusters[0].DeletionProtection",
        "DBClusterNotFoundFault",
        "modify-db-cluster --db-cluster-identifier {name} --no-deletion-protection --apply-immediately",
    ),
    "AWS::RDS::GlobalCluster": _RdsKind(
        "Aurora global database",
        "GlobalClusterIdentifier",
        "describe-global-clusters --global-cluster-identifier",
        "GlobalClusters[0].DeletionProtection",
        "GlobalClusterNotFoundFault",
        "modify-global-cluster --global-cluster-identifier {name} --no-deletion-protection",
    ),
}


def _rds_protection(stack: Stack, kind: _RdsKind, name: str) -> Protection:
    q = shlex.quote
    return Protection(
        stack.name,
        stack.region,
        f"{kind.what} {name}",
        [
            f'if ! value="$(aws rds {kind.describe} {q(name)} --region {q(stack.region)} '
            f'--query "{kind.query}" --output text 2>&1)"; then',
            '  case "$value" in',
            f"    *{kind.not_found}*) value=None ;;",
            "    *) unreadable "
            + q(f"the deletion protection of {kind.what} {name} ({stack.region})")
            + ' "$value" ;;',
            "  esac",
            "fi",
        ],
        f"aws rds {kind.lift.format(name=name)} --region {stack.region}",
    )


def _protections(stack: Stack) -> list[Protection]:
    q = shlex.quote
    found = []
    for logical, resource in stack.body.get("Resources", {}).items():
        kind, props = resource.get("Type"), resource.get("Properties", {})
        rds = _RDS_PROTECTED.get(str(kind))
        if rds is not None and props.get("DeletionProtection") in (True, "true"):
            name = props.get(rds.id_property)
            if isinstance(name, str):
                found.append(_rds_protection(stack, rds, name))
        elif kind == "AWS::ElasticLoadBalancingV2::LoadBalancer" and any(
            a.get("Key") == "deletion_protection.enabled" and str(a.get("Value")).lower() == "true"
            for a in props.get("LoadBalancerAttributes", [])
        ):
            output = _output_of(stack.body, logical)
            if output is None:
                continue
            found.append(
                Protection(
                    stack.name,
                    stack.region,
                    f"load balancer {logical} (output {output} of {stack.name})",
                    [
                        f'if ! arn="$(aws cloudformation describe-stacks --stack-name {q(stack.name)} '
                        f"--region {q(stack.region)} --query \"Stacks[0].Outputs[?OutputKey=='{output}'].OutputValue\" "
                        '--output text 2>&1)"; then',
                        f'  unreadable {q(f"the stack {stack.name} ({stack.region})")} "$arn"',
                        "fi",
                        'value=""',
                        'if [[ -n "$arn" && "$arn" != None ]] && '
                        '! value="$(aws elbv2 describe-load-balancer-attributes '
                        f'--load-balancer-arn "$arn" --region {q(stack.region)} '
                        '--query "Attributes[?Key==\'deletion_protection.enabled\'].Value" --output text 2>&1)"; then',
                        "  unreadable "
                        + q(f"the deletion protection of the load balancer of {stack.name} ({stack.region})")
                        + ' "$value"',
                        "fi",
                    ],
                    f'aws elbv2 modify-load-balancer-attributes --load-balancer-arn "$arn" --region {stack.region} '
                    "--attributes Key=deletion_protection.enabled,Value=false",
                )
            )
    return found


def _output_of(body: Mapping[str, Any], logical: str) -> str | None:
    """The output whose value is ``Ref`` of the resource (its ARN for a load balancer)."""
    for key, spec in body.get("Outputs", {}).items():
        if spec.get("Value") == {"Ref": logical}:
            return str(key)
    return None


# --- status.sh --------------------------------------------------------------------------------


def status_script(title: str, stacks: list[Stack], account: str = "") -> str:
    """status.sh. A stack in another account (``Stack.account``: the project's stacks where the registry
    has an account of its own) is not asked about: CloudFormation has no resource-based policies (IAM
    User Guide, "AWS services that work with IAM"), so this account's credentials can never describe it,
    and the answer ("does not exist") would read as "not deployed". Its row names the account and the
    folder whose status.sh reports it."""
    q = shlex.quote
    own = [s for s in stacks if s.own]
    elsewhere = sorted({s.account for s in stacks if s.account and s.account != account})
    about = [
        f"Prints the status of {title}: every stack of its manifest in deploy order, with its status, its last",
        "drift detection and, for a stack in a failed or rolled-back state, its last failed event. It changes",
        f"nothing. Signed in to account {account}; a stack of another account ({', '.join(elsewhere) or 'none'})",
        "is listed with the status.sh that reports it.",
    ]
    out = [
        "#!/usr/bin/env bash",
        f"# Status of {title}: every stack of its manifest in deploy order, with its status, its last drift",
        "# detection and, for a stack in a failed or rolled-back state, its last failed event.",
        "# Generated by infra-templates; do not edit: change the environment files and run `make templates`.",
        "#",
        f"# Exit 0 when the {len(own)} stack(s) this folder deploys are complete, 1 otherwise. --help: all of it.",
        "set -euo pipefail",
        "",
        *help_lines(
            "./status.sh",
            about,
            [("-h, --help", "print this help and exit")],
            [],
            [
                ("0", f"the {len(own)} stack(s) this folder deploys are complete (CREATE, UPDATE or IMPORT_COMPLETE)"),
                (
                    "1",
                    "a stack of this folder is not complete (not deployed, failed, rolled back, in progress) "
                    "or could not be read (its row quotes the AWS CLI's error), the AWS CLI is missing, it is not "
                    f"signed in, or signed in to another account than {account}",
                ),
                ("2", "an unknown argument"),
            ],
        ),
        *HELP_ANYWHERE,
        'case "$*" in',
        '  "") ;;',
        '  *) echo "status.sh: unknown option or argument: $*" >&2; echo "usage: $0 (or --help)" >&2; exit 2 ;;',
        "esac",
        "command -v aws >/dev/null || { echo 'status.sh: the AWS CLI (aws) is not installed' >&2; exit 1; }",
        # Signed in first, to the folder's account: without credentials every stack's call would fail the
        # same way, and another account's answer for each stack would be "does not exist".
        *signed_in_check("status.sh", title, account, "no stack was read"),
        "healthy=true",
        "unreadable=0",
        'row="%-44s %-14s %-24s %-12s %s\\n"',
        "# shellcheck disable=SC2059 # the format is the one above, on purpose a variable",
        'printf "$row" STACK REGION STATUS DRIFT ""',
    ]
    for stack in stacks:
        name, region = q(stack.name), q(stack.region)
        label = f" ({stack.note})" if stack.note else ""
        note = q(stack.note) if stack.note else '""'
        if stack.account and stack.account != account:
            where = f"account {stack.account}"
            out += [
                "",
                f"# {stack.name}{label}: in account {stack.account}, out of this account's reach.",
                "# shellcheck disable=SC2059",
                f'printf "$row" {name} {region} {q(where)} "" {q(f"{stack.note}: ../{stack.folder}/status.sh")}',
            ]
            continue
        out += [
            "",
            f"# {stack.name}{label}",
            'drift=""',
            f'if state="$(aws cloudformation describe-stacks --stack-name {name} --region {region} '
            '--query "Stacks[0].[StackStatus,DriftInformation.StackDriftStatus]" --output text 2>&1)"; then',
            "  drift=\"${state#*$'\\t'}\"",
            "  state=\"${state%%$'\\t'*}\"",
            f'elif [[ "$state" == {stack_absent(stack.name)} ]]; then',
            "  state=NOT_DEPLOYED",
            "else  # not an answer about the stack (access refused, credentials, throttling): said as such",
            "  state=\"ERROR: ${state//$'\\n'/ }\"",
            "  unreadable=$((unreadable + 1))",
            "fi",
            "# shellcheck disable=SC2059",
            f'printf "$row" {name} {region} "$state" "$drift" {note}',
            'case "$state" in',
            f"  {'|'.join(HEALTHY)}) ;;",
            f"  *) {'healthy=false' if stack.own else ':'} ;;",
            "esac",
            'case "$drift" in',
            "  DRIFTED)",
            "    cat <<'EOF'",
            f"    drifted since it was deployed; what changed: aws cloudformation describe-stack-resource-drifts "
            f"--stack-name {stack.name} --region {stack.region} --stack-resource-drift-status-filters MODIFIED DELETED",
            "EOF",
            "    ;;",
            "  NOT_CHECKED)",
            "    cat <<'EOF'",
            f"    drift never checked; to check: aws cloudformation detect-stack-drift --stack-name {stack.name} "
            f"--region {stack.region}",
            "EOF",
            "    ;;",
            "esac",
            'if [[ "$state" == *FAILED* || "$state" == *ROLLBACK* ]]; then',
            f'  if event="$(aws cloudformation describe-stack-events --stack-name {name} --region {region} '
            "--query \"StackEvents[?contains(ResourceStatus, 'FAILED')] | [0].[Timestamp,LogicalResourceId,"
            'ResourceStatus,ResourceStatusReason]" --output text 2>&1)"; then',
            '    echo "    last failed event:"',
            "    echo \"    ${event//$'\\n'/$'\\n'    }\"",
            "  else",
            "    echo \"    last failed event: could not read it: ${event//$'\\n'/ }\"",
            "  fi",
            "fi",
        ]
    out += [
        "",
        'if [[ "$unreadable" != 0 ]]; then',
        "  echo \"status.sh: $unreadable stack(s) could not be read (ERROR: the AWS CLI's error, e.g. a permission "
        'your identity lacks): their state is unknown, not absent" >&2',
        "fi",
        'if [[ "$healthy" == true ]]; then',
        f'  echo "{title}: the {len(own)} stack(s) of this folder are complete."',
        "else",
        f'  echo "{title}: not every stack of this folder is complete (see above)." >&2',
        "  exit 1",
        "fi",
    ]
    return "\n".join(out) + "\n"


# --- logs.sh ----------------------------------------------------------------------------------


def logs_script(title: str, services: list[ServiceLog], account: str) -> str:
    q = shlex.quote
    names = ", ".join(f"{s.service} ({s.kind})" for s in services) or "none"
    known = "|".join(q(s.service) for s in services) or "''"  # without services: a pattern only '' matches
    out = [
        "#!/usr/bin/env bash",
        f"# Follows the log of one service of {title}: its log group, tailed and followed (AWS CLI v2's logs tail).",
        "# Generated by infra-templates; do not edit: change the environment files and run `make templates`.",
        "#",
        "#   ./logs.sh SERVICE            the last 10 minutes, then new events as they come",
        "#   SINCE=2h ./logs.sh SERVICE   from 2 hours ago (s, m, h, d, w, or an ISO 8601 time)",
        "#",
        f"# Services: {names}. --help: all of it.",
        "set -euo pipefail",
        "",
        *help_lines(
            "./logs.sh SERVICE",
            [
                f"Follows the log of one service of {title}: its CloudWatch Logs log group, tailed and followed",
                "(the AWS CLI version 2's logs tail, with --follow) until Ctrl-C. It changes nothing.",
                f"SERVICE: one of {names}.",
            ],
            [("-h, --help", "print this help and exit")],
            [("SINCE", "how far back to start: 10m by default; s, m, h, d, w, or an ISO 8601 time")],
            [
                ("130", "stopped with Ctrl-C (SIGINT), the usual end"),
                (
                    "1",
                    f"the AWS CLI is missing, is version 1, is not signed in, or signed in to another account than "
                    f"{account}",
                ),
                ("2", "no SERVICE, more than one, one this environment does not have, or an unknown option"),
                ("other", CLI_STATUS),
            ],
        ),
        f'usage="usage: $0 SERVICE|--help (one of: {names})"',
        *HELP_ANYWHERE,
        'if [[ $# -ne 1 ]]; then echo "$usage" >&2; exit 2; fi',
        "# The name first (no AWS call needed to refuse it), then the CLI and its credentials.",
        'case "$1" in',
        f"  {known}) ;;",
        '  -*) echo "logs.sh: unknown option $1" >&2; echo "$usage" >&2; exit 2 ;;',
        '  *) echo "logs.sh: no service $1 in this environment" >&2; echo "$usage" >&2; exit 2 ;;',
        "esac",
        "command -v aws >/dev/null || { echo 'logs.sh: the AWS CLI (aws) is not installed' >&2; exit 1; }",
        'case "$(aws --version)" in',
        "  aws-cli/1.*) echo 'logs.sh: the command it runs (logs tail) needs the AWS CLI version 2' >&2; exit 1 ;;",
        "esac",
        *signed_in_check("logs.sh", title, account, "no log was read"),
        *(['since="${SINCE:-10m}"'] if services else []),
        'case "$1" in',
    ]
    for s in services:
        out += [
            f"  {q(s.service)})",
            f"    # {s.group}: the log group of {s.stack} ({s.region})",
            f'    exec aws logs tail {q(s.group)} --region {q(s.region)} --follow --since "$since" --format short ;;',
        ]
    out += [
        '  *) echo "logs.sh: no service $1 in this environment" >&2; echo "$usage" >&2; exit 2 ;;',
        "esac",
    ]
    return "\n".join(out) + "\n"


# --- destroy.sh -------------------------------------------------------------------------------


def _fate(stacks: list[Stack]) -> tuple[list[str], list[str]]:
    """(kept, lost): the stateful resources a deletion keeps (by their DeletionPolicy) and loses."""
    kept, lost = [], []
    for stack in stacks:
        stateful = stateful_resources(stack.body)
        policies = kept_resources(stack.body)
        for name, policy in policies.items():
            kind = stack.body["Resources"][name]["Type"]
            what = "a final snapshot is kept" if policy == "Snapshot" else "kept"
            kept.append(f"{stack.name}: {name} ({kind}, DeletionPolicy {policy}): {what}")
        for name, kind in stateful.items():
            # An Aurora cluster's instance holds no data (the cluster volume does): nothing is lost with it.
            aurora_instance = "DBClusterIdentifier" in stack.body["Resources"][name].get("Properties", {})
            if name not in policies and not aurora_instance:
                lost.append(f"{stack.name}: {name} ({kind}): deleted with its stack")
    return kept, lost


def destroy_script(title: str, folder: str, account: str, stacks: list[Stack]) -> str:
    q = shlex.quote
    own = [s for s in stacks if s.own]
    order = list(reversed(own))
    kept, lost = _fate(order)
    others = [s for s in stacks if not s.own]
    out = [
        "#!/usr/bin/env bash",
        f"# Deletes {title}: the {len(own)} stack(s) of this folder, in reverse deploy order, from account {account}.",
        "# Generated by infra-templates; do not edit: change the environment files and run `make templates`.",
        "#",
        f"#   ./destroy.sh                 states what is kept and lost, then asks for '{folder}' typed back",
        f"#   CONFIRM={folder} ./destroy.sh   the same without the question",
        "#",
        "# It refuses while termination protection or deletion protection would stop a deletion half-way,",
        "# and prints the command that lifts each. Stacks of other folders are never touched.",
        "# Each stack deleted is dropped from $DEPLOYED_DIR (default: deployed/ beside output/), deploy.sh's record.",
        "# --help: all of it.",
        "set -euo pipefail",
        "",
        *help_lines(
            "./destroy.sh",
            [
                f"Deletes {title}: the {len(own)} stack(s) of this folder, in reverse deploy order, from account "
                f"{account}.",
                "First it states which stateful resources are kept (DeletionPolicy) and which are lost, refuses",
                "while termination or deletion protection would stop a deletion half-way (printing the command",
                f"that lifts each), and asks for '{folder}' typed back. Stacks of other folders are never touched.",
            ],
            [("-h, --help", "print this help and exit")],
            [
                ("CONFIRM", f"'{folder}': delete without asking (the name typed back in advance)"),
                (
                    "DEPLOYED_DIR",
                    "deploy.sh's record, from which each deleted stack is dropped (default: deployed/ beside output/)",
                ),
            ],
            [
                ("0", "every stack of this folder deleted (or not deployed); the last line counts those deleted"),
                (
                    "1",
                    "nothing deleted: a protection is on, the name was not typed back, the AWS CLI is missing, "
                    "not signed in, or signed in to another account; or AWS answered a read with an error (not "
                    '"does not exist": access refused, credentials, throttling), quoted with the stack, or a '
                    "deletion failed: the stacks before it are deleted, nothing after it, and the record of every "
                    "stack not deleted is kept",
                ),
                ("2", "an unknown argument"),
            ],
        ),
        *HELP_ANYWHERE,
        'case "$*" in',
        '  "") ;;',
        '  *) echo "destroy.sh: unknown option or argument: $*" >&2',
        '     echo "usage: $0 (or --help; CONFIRM=<name> to skip the question)" >&2; exit 2 ;;',
        "esac",
        'here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
        'deployed="${DEPLOYED_DIR:-$here/../../deployed}"',
        "command -v aws >/dev/null || { echo 'destroy.sh: the AWS CLI (aws) is not installed' >&2; exit 1; }",
        "",
        "cat <<'EOF'",
        f"Deleting {title} deletes these {len(own)} stack(s), in this order:",
        *(f"  {s.name} ({s.region})" for s in order),
        "",
        "Kept by their DeletionPolicy (they stay in the account, and go on costing, until you delete them):",
        *(f"  {line}" for line in kept or ["none"]),
        "",
        "Lost: stateful resources deleted with their stack:",
        *(f"  {line}" for line in lost or ["none"]),
    ]
    if others:
        out += [
            "",
            "Not touched: the stacks of other folders this one builds on (each deleted by its own folder's",
            "destroy.sh; CloudFormation refuses to delete a stack whose export another stack still imports):",
            *(f"  {s.name} ({s.note})" for s in others),
        ]
    out += [
        "EOF",
        "",
        *signed_in_check("destroy.sh", title, account, "nothing was deleted"),
        "",
        "deleted=0",
        '# unreadable WHAT ERROR: AWS answered a read with an error other than "does not exist" (access refused,',
        "# credentials, throttling): whether WHAT is there is unknown, so the script stops; nothing further is",
        "# deleted, and the record of every stack not deleted stays.",
        "unreadable() {",
        '  local done="nothing was deleted"',
        '  if [[ "$deleted" != 0 ]]; then done="$deleted stack(s) deleted before it, nothing after it"; fi',
        '  echo "destroy.sh: could not read $1, so whether it is there is unknown: $done; fix the cause (a permission '
        "your identity lacks, expired credentials...) and run it again. The AWS CLI said: ${2//$'\\n'/ }\" >&2",
        "  exit 1",
        "}",
        "# not_deleted STACK WHY: a deletion failed (the AWS CLI's error is above): the script stops there, the",
        "# stack's record stays.",
        "not_deleted() {",
        '  local done="no stack was deleted"',
        '  if [[ "$deleted" != 0 ]]; then done="$deleted stack(s) deleted before it, nothing after it"; fi',
        '  echo "destroy.sh: $1 was not deleted: $2; $done. Its status and last failed event: status.sh beside '
        'this script" >&2',
        "  exit 1",
        "}",
        "",
        "# Refuse before deleting anything when a protection would stop the deletion half-way.",
        "blocked=false",
    ]
    for stack in order:
        name, region = q(stack.name), q(stack.region)
        out += [
            f'if ! protection="$(aws cloudformation describe-stacks --stack-name {name} --region {region} '
            '--query "Stacks[0].EnableTerminationProtection" --output text 2>&1)"; then',
            '  case "$protection" in',
            f"    {stack_absent(stack.name)}) protection=absent ;;  # not deployed: nothing to protect",
            f'    *) unreadable {q(f"the stack {stack.name} ({stack.region})")} "$protection" ;;',
            "  esac",
            "fi",
            'if [[ "$protection" == True ]]; then',
            "  cat >&2 <<'EOF'",
            f"destroy.sh: {stack.name} has termination protection on; to lift it:",
            "  aws cloudformation update-termination-protection --no-enable-termination-protection "
            f"--stack-name {stack.name} --region {stack.region}",
            "EOF",
            "  blocked=true",
            "fi",
        ]
        protections = _protections(stack)
        if protections:
            out.append('if [[ "$protection" != absent ]]; then  # its resources, only where the stack is deployed')
        for protection in protections:
            out += [
                *protection.check,
                'if [[ "$value" == True || "$value" == true ]]; then',
                "  cat >&2 <<EOF",
                f"destroy.sh: {protection.what} has deletion protection on; to lift it:",
                f"  {protection.lift}",
                "EOF",
                "  blocked=true",
                "fi",
            ]
        if protections:
            out.append("fi")
    out += [
        'if [[ "$blocked" == true ]]; then',
        '  echo "destroy.sh: nothing was deleted; lift the protections above first (a deliberate act)" >&2',
        "  exit 1",
        "fi",
        "",
        'answer="${CONFIRM:-}"',
        'if [[ -z "$answer" ]]; then',
        # read fails at the end of its input (a CI job with no terminal): under set -e that ended
        # the script without a word
        f'  if ! read -r -p "Type {folder} to delete its {len(own)} stack(s): " answer && [[ -z "$answer" ]]; then',
        f'    echo "destroy.sh: no answer to read (no terminal?); set CONFIRM={folder} to delete without the '
        'question; nothing was deleted" >&2',
        "    exit 1",
        "  fi",
        "fi",
        f'if [[ "$answer" != {q(folder)} ]]; then',
        f'  echo "destroy.sh: {folder} was not typed back; nothing was deleted" >&2',
        "  exit 1",
        "fi",
    ]
    for index, stack in enumerate(order, 1):
        name, region = q(stack.name), q(stack.region)
        out += [
            "",
            f'echo "==> {index}/{len(order)} deleting {stack.name} ({stack.region})"',
            f'if found="$(aws cloudformation describe-stacks --stack-name {name} --region {region} '
            '--query "Stacks[0].StackStatus" --output text 2>&1)"; then',
            f"  aws cloudformation delete-stack --stack-name {name} --region {region} || "
            f"not_deleted {q(f'{stack.name} ({stack.region})')} 'AWS refused delete-stack'",
            f"  aws cloudformation wait stack-delete-complete --stack-name {name} --region {region} || "
            f"not_deleted {q(f'{stack.name} ({stack.region})')} "
            "'its deletion did not complete (DELETE_FAILED: its events say why; or the wait gave up)'",
            "  deleted=$((deleted + 1))",
            "else",
            '  case "$found" in',
            f'    {stack_absent(stack.name)}) echo "    not deployed: nothing to delete" ;;',
            f'    *) unreadable {q(f"the stack {stack.name} ({stack.region})")} "$found" ;;',
            "  esac",
            "fi",
            "# Gone (deleted, or never there): no longer the baseline make diff compares with (deploy.sh recorded it).",
            f'rm -f "$deployed/{folder}/{stack.region}/{stack.name}.json"',
        ]
    out += [
        "",
        f'echo "{title}: $deleted stack(s) deleted, $(({len(order)} - deleted)) not deployed."',
    ]
    return "\n".join(out) + "\n"


def day2_files(
    title: str,
    folder: str,
    account: str,
    plans: Sequence[tuple[Any, ...]],
    templates: Mapping[str, Mapping[str, Any]],
) -> dict[str, str]:
    """``status.sh``, ``logs.sh`` and ``destroy.sh`` of one folder. ``plans``: (stack, region, own,
    note[, account, folder]) in the manifest's order (account: where it is deployed, if not in
    ``account``; folder: the output folder of its templates); ``templates`` maps each stack to its template."""
    stacks = [Stack(name, region, own, note, templates[name], *more) for name, region, own, note, *more in plans]
    return {
        STATUS: status_script(title, stacks, account),
        LOGS: logs_script(title, service_logs(stacks), account),
        DESTROY: destroy_script(title, folder, account, stacks),
    }
