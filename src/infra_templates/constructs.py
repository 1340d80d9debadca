"""Resource builders with secure defaults, so a default lives in one place and not in copies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from awacs import logs as logs_actions
from awacs import s3 as s3_actions
from awacs.aws import (
    Action,
    Allow,
    ArnLike,
    Bool,
    Condition,
    Deny,
    PolicyDocument,
    Principal,
    Statement,
    StringEquals,
    StringNotEquals,
)
from troposphere import (
    AccountId,
    AWSObject,
    GetAtt,
    Ref,
    Sub,
    Tags,
    Template,
    awslambda,
    cloudwatch,
    ec2,
    kms,
    logs,
    s3,
    secretsmanager,
    wafv2,
)
from troposphere.iam import ManagedPolicy, Policy, Role

from infra_templates import iam
from infra_templates.config import Environment


def protect(resource: AWSObject, env: Environment | None, always: bool = False) -> None:
    """Set DeletionPolicy and UpdateReplacePolicy on a stateful resource.

    Production keeps the resource when the stack deletes or replaces it; other environments let it
    go, unless ``always`` (keys: deleting a key loses every byte it encrypted, in any environment).
    """
    policy = "Retain" if (always or env is None or env.production) else "Delete"
    resource.DeletionPolicy = policy
    resource.UpdateReplacePolicy = policy


def kms_key(logical_id: str, env: Environment | None, description: str, policy: PolicyDocument) -> kms.Key:
    """A symmetric customer managed key with yearly rotation and a 30-day deletion window."""
    key = kms.Key(
        logical_id,
        Description=description,
        EnableKeyRotation=True,
        PendingWindowInDays=30,
        KeyPolicy=policy,
    )
    protect(key, env, always=True)
    return key


def kms_alias(logical_id: str, name: str, key: kms.Key) -> kms.Alias:
    """``name`` with or without its ``alias/`` prefix."""
    return kms.Alias(logical_id, AliasName=f"alias/{name.removeprefix('alias/')}", TargetKeyId=Ref(key))


def log_group(logical_id: str, env: Environment, retention_days: int, kms_key_arn: Any) -> logs.LogGroup:
    """A log group encrypted with the environment's logs key, with a retention (never 'forever').

    Its name is left to CloudFormation (``{stack}-{LogicalId}-{suffix}``): the logs key's policy
    trusts log groups whose names start with ``{project}-{env}-``, which that pattern guarantees.
    """
    group = logs.LogGroup(logical_id, RetentionInDays=retention_days, KmsKeyId=kms_key_arn)
    protect(group, env)
    return group


def name_tag(value: str) -> Tags:
    return Tags(Name=value)


# Egress placeholder: a group with no egress rule gets CloudFormation's allow-all default; one
# inline rule to nowhere removes it, and the rules that are really needed are added beside it.
NO_EGRESS = ec2.SecurityGroupRule(
    IpProtocol="-1",
    CidrIp="127.0.0.1/32",
    Description="No outbound traffic except the rules added beside this one (removes the allow-all default)",
)


def security_group(logical_id: str, description: str, vpc_id: Any, name: str) -> ec2.SecurityGroup:
    """A security group that starts closed both ways; rules are added as their own resources."""
    return ec2.SecurityGroup(
        logical_id,
        GroupDescription=description,
        VpcId=vpc_id,
        SecurityGroupEgress=[NO_EGRESS],
        Tags=Tags(Name=name),
    )


# No function of the platform reserves concurrency. Reserving any leaves the account's unreserved
# concurrency at 100 or more or fails ("You can reserve up to the Unreserved account concurrency value
# that is shown, minus 100 for functions that don't have reserved concurrency": Lambda Developer
# Guide, "Configuring reserved concurrency"); a new account's concurrency quota can be as low as 10,
# where every stack with a reservation failed (aws-samples/alarm-context-tool#2), and reservations
# add up with each service's release hook. Security Hub's Lambda controls ask for none.
NO_RESERVED_CONCURRENCY = (
    "CKV_AWS_115",
    "No reserved concurrency on purpose: a reservation needs the account's unreserved concurrency to stay at 100 "
    "or more (Lambda, Configuring reserved concurrency), which a new account's quota fails; only AWS services "
    "invoke this function (its resource policy), a few times a day",
)


def skip_checkov(resource: AWSObject, *reasons: tuple[str, str]) -> None:
    """Record checkov skips in the resource's Metadata, each with the reason a reviewer reads."""
    metadata = dict(getattr(resource, "Metadata", None) or {})
    skips = list(metadata.get("checkov", {}).get("skip", []))
    skips.extend({"id": check, "comment": reason} for check, reason in reasons)
    metadata["checkov"] = {"skip": skips}
    resource.Metadata = metadata


def private_bucket(
    logical_id: str,
    env: Environment | None,
    *,
    kms_key_arn: Any | None,
    expire_days: int | None,
    noncurrent_days: int = 30,
) -> s3.Bucket:
    """A bucket nobody outside the account can read: public access blocked, ACLs off (owner
    enforced), encrypted (KMS when a key is given, else SSE-S3), versioned, with a lifecycle."""
    if kms_key_arn is None:
        encryption = s3.ServerSideEncryptionByDefault(SSEAlgorithm="AES256")
    else:
        encryption = s3.ServerSideEncryptionByDefault(SSEAlgorithm="aws:kms", KMSMasterKeyID=kms_key_arn)
    bucket = s3.Bucket(
        logical_id,
        BucketEncryption=s3.BucketEncryption(
            ServerSideEncryptionConfiguration=[
                s3.ServerSideEncryptionRule(
                    ServerSideEncryptionByDefault=encryption, BucketKeyEnabled=kms_key_arn is not None
                )
            ]
        ),
        PublicAccessBlockConfiguration=s3.PublicAccessBlockConfiguration(
            BlockPublicAcls=True, BlockPublicPolicy=True, IgnorePublicAcls=True, RestrictPublicBuckets=True
        ),
        OwnershipControls=s3.OwnershipControls(Rules=[s3.OwnershipControlsRule(ObjectOwnership="BucketOwnerEnforced")]),
        VersioningConfiguration=s3.VersioningConfiguration(Status="Enabled"),
        LifecycleConfiguration=s3.LifecycleConfiguration(
            Rules=[
                s3.LifecycleRule(
                    Id="expire" if expire_days else "expire-old-versions",
                    Status="Enabled",
                    NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(NoncurrentDays=noncurrent_days),
                    AbortIncompleteMultipartUpload=s3.AbortIncompleteMultipartUpload(DaysAfterInitiation=7),
                    **({"ExpirationInDays": expire_days} if expire_days else {}),
                )
            ]
        ),
    )
    protect(bucket, env)
    return bucket


def access_log_bucket(
    logical_id: str, env: Environment | None, *, expire_days: int, source_bucket_names: list[str]
) -> tuple[s3.Bucket, Statement]:
    """A bucket for S3 server access logs of the named buckets, and the bucket-policy statement that
    lets S3's logging service write them (AWS: "Enabling Amazon S3 server access logging": the
    destination uses SSE-S3, since SSE-KMS is not supported there; grant ``logging.s3.amazonaws.com``
    ``s3:PutObject`` with ``aws:SourceArn`` and ``aws:SourceAccount``). Logs are written under
    ``s3/``; the bucket logs nothing of its own (it would log its own log writes)."""
    bucket = private_bucket(logical_id, env, kms_key_arn=None, expire_days=expire_days)
    skip_checkov(
        bucket,
        ("CKV_AWS_18", "this bucket holds access logs; logging its own access to itself would loop"),
    )
    statement = Statement(
        Sid="S3WritesServerAccessLogsOfTheNamedBuckets",
        Effect=Allow,
        Principal=Principal("Service", "logging.s3.amazonaws.com"),
        Action=[s3_actions.PutObject],
        Resource=[Sub("${%s.Arn}/s3/*" % logical_id)],
        Condition=iam.condition(
            [
                ArnLike("aws:SourceArn", [Sub("arn:${AWS::Partition}:s3:::%s" % n) for n in source_bucket_names]),
                StringEquals("aws:SourceAccount", AccountId),
            ]
        ),
    )
    return bucket, statement


def deny_insecure_transport(bucket: s3.Bucket | Any) -> Statement:
    """The statement every bucket policy starts with: no request over plain HTTP (Security Hub S3.5).

    ``bucket`` is this template's bucket, or the ARN of one another stack made."""
    if isinstance(bucket, s3.Bucket):
        arn, objects = GetAtt(bucket, "Arn"), Sub("${%s.Arn}/*" % bucket.title)
    else:
        arn, objects = bucket, Sub("${Bucket}/*", Bucket=bucket)
    return Statement(
        Sid="DenyInsecureTransport",
        Effect=Deny,
        Principal=Principal("*"),
        Action=[s3_actions.Action("*")],
        Resource=[arn, objects],
        Condition=Condition(Bool("aws:SecureTransport", "false")),
    )


# Regions opened before August 2022 deliver ALB access logs from an Elastic Load Balancing
# account of their own (AWS: "Enable access logs for your Application Load Balancer"); newer
# regions use the logdelivery.elasticloadbalancing.amazonaws.com service principal.
ELB_LOG_ACCOUNTS = {
    "us-east-1": "127311923021", "us-east-2": "033677994240", "us-west-1": "027434742980",
    "us-west-2": "797873946194", "af-south-1": "098369216593", "ap-east-1": "754344448648",
    "ap-southeast-3": "589379963580", "ap-south-1": "718504428378", "ap-northeast-3": "383597477331",
    "ap-northeast-2": "600734575887", "ap-southeast-1": "114774131450", "ap-southeast-2": "783225319266",
    "ap-northeast-1": "582318560864", "ca-central-1": "985666609251", "eu-central-1": "054676820928",
    "eu-west-1": "156460612806", "eu-west-2": "652711504416", "eu-south-1": "635631232127",
    "eu-west-3": "009996457667", "eu-north-1": "897822967062", "me-south-1": "076674570225",
    "sa-east-1": "507241528517", "us-gov-west-1": "048591011584", "us-gov-east-1": "190560391635",
    "cn-north-1": "638102146993", "cn-northwest-1": "037604701340",
}  # fmt: skip


def elb_log_delivery(region: str) -> Principal:
    account = ELB_LOG_ACCOUNTS.get(region)
    if account is None:
        return Principal("Service", "logdelivery.elasticloadbalancing.amazonaws.com")
    return Principal("AWS", Sub("arn:${AWS::Partition}:iam::%s:root" % account))


# AWS managed rule groups every web ACL runs after the rate limit, in this order.
MANAGED_RULE_GROUPS = (
    "AWSManagedRulesAmazonIpReputationList",  # sources known for bots and reconnaissance
    "AWSManagedRulesCommonRuleSet",  # OWASP top-ten style exploits
    "AWSManagedRulesKnownBadInputsRuleSet",  # request patterns known to be malicious, Log4Shell among them
)
WAF_LOG_PREFIX = "aws-waf-logs-"  # WAF delivers logs only to log groups named like this


def firewall(
    t: Template,
    env: Environment,
    *,
    name: str,
    scope: str,
    rate_limit: int,
    logs_key_arn: Any,
    retention_days: int,
    forwarded_ip: bool = False,
) -> wafv2.WebACL:
    """A WAFv2 web ACL: a rate limit per IP, then AWS's managed rule groups, logged to an encrypted
    group named ``aws-waf-logs-<name>`` (WAF accepts no other name).

    ``forwarded_ip``: the ACL sits behind CloudFront, whose addresses every request comes from, so
    the rate limit counts the first address of X-Forwarded-For, the viewer's as CloudFront forwards
    it (AWS WAF API Reference, "ForwardedIPConfig": "AWS WAF only evaluates the first IP address
    found in the specified HTTP header"). A request without the header is not counted (NO_MATCH):
    only Route 53's health checkers reach the load balancer without CloudFront. A viewer can put a
    forged first address in its own X-Forwarded-For (CloudFront appends, it does not replace), so
    CloudFront's web ACL, which counts the connecting address, stays the limit that cannot be dodged."""
    metric = name.replace("-", "")

    def visibility(rule: str) -> wafv2.VisibilityConfig:
        return wafv2.VisibilityConfig(
            CloudWatchMetricsEnabled=True, SampledRequestsEnabled=True, MetricName=f"{metric}{rule}"
        )

    rules = [
        wafv2.WebACLRule(
            Name="RateLimitPerIp",
            Priority=0,
            Action=wafv2.RuleAction(Block=wafv2.BlockAction()),
            Statement=wafv2.Statement(
                RateBasedStatement=wafv2.RateBasedStatement(
                    Limit=rate_limit,
                    AggregateKeyType="FORWARDED_IP" if forwarded_ip else "IP",
                    EvaluationWindowSec=300,
                    **(
                        {
                            "ForwardedIPConfig": wafv2.ForwardedIPConfiguration(
                                HeaderName="X-Forwarded-For", FallbackBehavior="NO_MATCH"
                            )
                        }
                        if forwarded_ip
                        else {}
                    ),
                )
            ),
            VisibilityConfig=visibility("RateLimitPerIp"),
        )
    ]
    for priority, group in enumerate(MANAGED_RULE_GROUPS, start=1):
        rules.append(
            wafv2.WebACLRule(
                Name=group,
                Priority=priority,
                OverrideAction=wafv2.OverrideAction(**{"None": {}}),
                Statement=wafv2.Statement(
                    ManagedRuleGroupStatement=wafv2.ManagedRuleGroupStatement(VendorName="AWS", Name=group)
                ),
                VisibilityConfig=visibility(group),
            )
        )
    acl = t.add_resource(
        wafv2.WebACL(
            "WebAcl",
            # WAF descriptions allow letters, digits, spaces and = : # @ / - , . only.
            Description=f"{name} - rate limit per IP, then AWS managed rules - "
            + ", ".join(group.removeprefix("AWSManagedRules") for group in MANAGED_RULE_GROUPS),
            Scope=scope,
            DefaultAction=wafv2.DefaultAction(Allow=wafv2.AllowAction()),
            Rules=rules,
            VisibilityConfig=visibility("WebAcl"),
        )
    )
    group = log_group("WafLogGroup", env, retention_days, logs_key_arn)
    group.LogGroupName = f"{WAF_LOG_PREFIX}{name}"
    t.add_resource(group)
    t.add_resource(
        wafv2.LoggingConfiguration(
            "WafLogging",
            ResourceArn=GetAtt(acl, "Arn"),
            # WAF wants the log group's ARN without the ":*" that GetAtt Arn ends with.
            LogDestinationConfigs=[
                Sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${%s}" % group.title)
            ],
        )
    )
    return acl


def allow_between(
    t: Template,
    source: Any,
    target: Any,
    port: int,
    *,
    egress: tuple[str, str],
    ingress: tuple[str, str],
) -> None:
    """Let the group ``source`` open TCP connections to the group ``target`` on ``port``: the egress
    rule on the source and the ingress rule on the target, each ``(logical ID, description)``.
    Groups are given by id (``GetAtt(group, "GroupId")``, or an imported id). Both groups start
    closed, so this pair is the whole path."""
    t.add_resource(
        ec2.SecurityGroupEgress(
            egress[0],
            GroupId=source,
            IpProtocol="tcp",
            FromPort=port,
            ToPort=port,
            DestinationSecurityGroupId=target,
            Description=egress[1],
        )
    )
    t.add_resource(
        ec2.SecurityGroupIngress(
            ingress[0],
            GroupId=target,
            IpProtocol="tcp",
            FromPort=port,
            ToPort=port,
            SourceSecurityGroupId=source,
            Description=ingress[1],
        )
    )


def metric_alarm(
    logical_id: str,
    topic_arn: Any,
    *,
    description: str,
    namespace: str,
    metric: str,
    dimensions: dict[str, Any],
    comparison: str,
    threshold: float,
    missing_data: str,
    period: int,
    evaluation_periods: int,
    datapoints: int,
    statistic: str = "Sum",
) -> cloudwatch.Alarm:
    """A metric alarm that tells the alarm topic both when it fires and when it clears.

    ``statistic`` is a plain statistic (Sum, Average, Minimum, Maximum) or a percentile (p95).
    ``missing_data`` is chosen by the caller for each metric: some metrics are absent when all is
    well (no 5xx), others when something is badly wrong (no running tasks).
    """
    stat: dict[str, Any] = {"ExtendedStatistic": statistic} if statistic.startswith("p") else {"Statistic": statistic}
    return cloudwatch.Alarm(
        logical_id,
        AlarmDescription=description,
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[cloudwatch.MetricDimension(Name=k, Value=v) for k, v in dimensions.items()],
        ComparisonOperator=comparison,
        Threshold=float(threshold),
        Period=period,
        EvaluationPeriods=evaluation_periods,
        DatapointsToAlarm=datapoints,
        TreatMissingData=missing_data,
        AlarmActions=[topic_arn],
        OKActions=[topic_arn],
        **stat,
    )


def alarm_adder(t: Template, env: Environment, topic_arn: Any) -> Callable[..., cloudwatch.Alarm]:
    """A function ``add(logical_id, **metric_alarm's keywords)`` that adds a ``metric_alarm`` on
    ``topic_arn`` to ``t``, judged with the environment's ``monitoring.alarms`` (period, evaluation
    periods, datapoints) unless the call gives its own."""
    limits = env.monitoring.alarms
    common: dict[str, Any] = {
        "period": limits.period_seconds,
        "evaluation_periods": limits.evaluation_periods,
        "datapoints": limits.datapoints_to_alarm,
    }

    def add(logical_id: str, **kwargs: Any) -> cloudwatch.Alarm:
        return t.add_resource(metric_alarm(logical_id, topic_arn, **{**common, **kwargs}))

    return add


def dead_letters_alarm(
    add: Callable[..., cloudwatch.Alarm], logical_id: str, queue: Any, *, description: str
) -> cloudwatch.Alarm:
    """An alarm (through ``add``, an ``alarm_adder``) as soon as the SQS queue ``queue`` (a resource or
    its title) holds a message: AWS/SQS ApproximateNumberOfMessagesVisible, Maximum, above 0; missing
    data is not breaching (SQS reports 0 for an empty queue and may stop reporting an idle one)."""
    return add(
        logical_id,
        description=description,
        namespace="AWS/SQS",
        metric="ApproximateNumberOfMessagesVisible",
        dimensions={"QueueName": GetAtt(queue, "QueueName")},
        statistic="Maximum",
        comparison="GreaterThanThreshold",
        threshold=0,
        missing_data="notBreaching",
    )


def metric_sum_alarm(
    logical_id: str,
    topic_arn: Any,
    *,
    description: str,
    namespace: str,
    metric: str,
    dimension_sets: list[dict[str, Any]],
    comparison: str,
    threshold: float,
    missing_data: str,
    period: int,
    evaluation_periods: int,
    datapoints: int,
    statistic: str = "Sum",
) -> cloudwatch.Alarm:
    """:func:`metric_alarm` on the sum of one metric over several dimension sets (both target groups
    of a blue/green service): ``FILL(m1, 0) + FILL(m2, 0) + ...``, so a set that reports nothing
    (the idle colour) counts as 0 and the alarm sees the whole, whichever set serves. With one set
    it is :func:`metric_alarm` itself. Metric math in alarms: CloudWatch User Guide, "Create a
    CloudWatch alarm based on a metric math expression"."""
    common: dict[str, Any] = {
        "description": description,
        "comparison": comparison,
        "threshold": threshold,
        "missing_data": missing_data,
        "period": period,
        "evaluation_periods": evaluation_periods,
        "datapoints": datapoints,
    }
    if len(dimension_sets) == 1:
        return metric_alarm(
            logical_id,
            topic_arn,
            namespace=namespace,
            metric=metric,
            dimensions=dimension_sets[0],
            statistic=statistic,
            **common,
        )
    queries = [
        cloudwatch.MetricDataQuery(
            Id=f"m{index}",
            ReturnData=False,
            MetricStat=cloudwatch.MetricStat(
                Metric=cloudwatch.Metric(
                    Namespace=namespace,
                    MetricName=metric,
                    Dimensions=[cloudwatch.MetricDimension(Name=k, Value=v) for k, v in dimensions.items()],
                ),
                Period=period,
                Stat=statistic,
            ),
        )
        for index, dimensions in enumerate(dimension_sets, start=1)
    ]
    total = " + ".join(f"FILL(m{index}, 0)" for index in range(1, len(dimension_sets) + 1))
    queries.append(cloudwatch.MetricDataQuery(Id="total", Expression=total, Label=f"{metric} (all)", ReturnData=True))
    return cloudwatch.Alarm(
        logical_id,
        AlarmDescription=description,
        Metrics=queries,
        ComparisonOperator=comparison,
        Threshold=float(threshold),
        EvaluationPeriods=evaluation_periods,
        DatapointsToAlarm=datapoints,
        TreatMissingData=missing_data,
        AlarmActions=[topic_arn],
        OKActions=[topic_arn],
    )


LAMBDA_RUNTIME = "python3.13"  # the Python runtime of every inline function (AWS Lambda's supported runtimes)


def inline_function(
    t: Template,
    env: Environment,
    title: str,
    *,
    code: str,
    description: str,
    role_description: str,
    policy_name: str,
    statements: list[Any],
    log_group_title: str,
    log_retention_days: int,
    logs_key_arn: Any,
    role_title: str | None = None,
    timeout: int = 60,
    variables: dict[str, str] | None = None,
    skips: tuple[tuple[str, str], ...] = (),
) -> tuple[awslambda.Function, Role]:
    """A small Lambda function whose code is inline (``index.handler``), with its own encrypted log
    group (``log_retention_days``, ``logs_key_arn``) and its own role: ``statements`` (awacs
    Statements) plus writing to that log group, nothing else. ``skips``: checkov (id, reason)
    pairs set on the function. Adds the log group, the role and the function to ``t``, in that order,
    and returns the function and its role."""
    group = t.add_resource(log_group(log_group_title, env, log_retention_days, logs_key_arn))
    own_logs = iam.allow(
        "WriteItsOwnLogs", [logs_actions.CreateLogStream, logs_actions.PutLogEvents], [GetAtt(group, "Arn")]
    )
    role = t.add_resource(
        Role(
            role_title or f"{title}Role",
            Description=role_description,
            AssumeRolePolicyDocument=iam.service_trust("lambda.amazonaws.com"),
            Policies=[Policy(PolicyName=policy_name, PolicyDocument=iam.document(*statements, own_logs))],
        )
    )
    extra: dict[str, Any] = {}
    if variables:
        extra["Environment"] = awslambda.Environment(Variables=variables)
    function = awslambda.Function(
        title,
        Description=description,
        Runtime=LAMBDA_RUNTIME,
        Handler="index.handler",
        Code=awslambda.Code(ZipFile=code),
        Role=GetAtt(role, "Arn"),
        MemorySize=128,
        Timeout=timeout,
        **extra,
        LoggingConfig=awslambda.LoggingConfig(LogGroup=Ref(group)),
    )
    skip_checkov(function, NO_RESERVED_CONCURRENCY, *skips)
    t.add_resource(function)
    return function, role


def rotation(
    t: Template, prefix: str, *, function: awslambda.Function, secret: Any, days: int, depends_on: list[str]
) -> secretsmanager.RotationSchedule:
    """``<prefix>RotationPermission``, Secrets Manager may invoke ``function`` for ``secret`` only
    ("Permissions for rotation", AWS Secrets Manager User Guide: the resource policy names the
    service, the account and the secret), and ``<prefix>RotationSchedule``, every ``days`` days,
    after ``depends_on`` and the permission. Adds both to ``t`` and returns the schedule."""
    permission = t.add_resource(
        awslambda.Permission(
            f"{prefix}RotationPermission",
            Action="lambda:InvokeFunction",
            FunctionName=GetAtt(function, "Arn"),
            Principal="secretsmanager.amazonaws.com",
            SourceAccount=AccountId,
            SourceArn=secret,
        )
    )
    return t.add_resource(
        secretsmanager.RotationSchedule(
            f"{prefix}RotationSchedule",
            DependsOn=[*depends_on, permission.title],
            SecretId=secret,
            RotationLambdaARN=GetAtt(function, "Arn"),
            RotationRules=secretsmanager.RotationRules(AutomaticallyAfterDays=days),
        )
    )


def permissions_boundary(title: str, *, name: str, description: str, regions: list[str]) -> ManagedPolicy:
    """A permissions boundary (``AWS::IAM::ManagedPolicy`` named ``name``) for the roles of a set of
    stacks: a role may do at most what its own policies grant AND this allows (IAM User Guide,
    "Permissions boundaries for IAM entities": the effective permissions are the intersection).
    It allows everything, then denies what no workload of ours needs: changing IAM
    (``iam.iam_writes()``), acting outside ``regions`` (aws:RequestedRegion; include us-east-1,
    where global services such as IAM, CloudFront and Route 53 take their requests: IAM User Guide
    "AWS: Denies access to AWS based on the requested Region"), and turning off trails and logs."""
    policy = ManagedPolicy(
        title,
        ManagedPolicyName=name,
        Description=description,
        PolicyDocument=iam.document(
            # A boundary grants nothing itself: the role's own policies do, least privilege each.
            Statement(Sid="AtMostWhatTheRolesOwnPoliciesGrant", Effect=Allow, Action=[Action("*")], Resource=["*"]),
            Statement(
                Sid="NeverChangeIam",
                Effect=Deny,
                Action=[Action(*a.split(":")) for a in iam.iam_writes()],
                Resource=["*"],
            ),
            Statement(
                Sid="StayInTheEnvironmentsRegions",
                Effect=Deny,
                Action=[Action("*")],
                Resource=["*"],
                Condition=Condition(StringNotEquals("aws:RequestedRegion", regions)),
            ),
            Statement(
                Sid="NeverTurnOffTrailsOrLogs",
                Effect=Deny,
                Action=[Action(*a.split(":")) for a in iam.TRAIL_AND_LOG_OFF],
                Resource=["*"],
            ),
        ),
    )
    reason = (
        "a permissions boundary grants nothing: it caps the roles' own least-privilege policies (IAM User Guide, "
        "'Permissions boundaries for IAM entities'); its Allow * is the cap, its Deny statements the limits"
    )
    skip_checkov(policy, ("CKV_AWS_109", reason), ("CKV_AWS_111", reason))
    return policy
