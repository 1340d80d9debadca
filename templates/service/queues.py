"""SQS queues of the service layer: a worker's own queue and its dead-letter queue, a job's
dead-letter queue, and what a service's task role needs to consume its queue or send to another's.

A worker's queue is named after its stack (``{project}-{env}-svc-{worker}``), so a service that
sends to it derives its ARN and URL from the settings alone, without a cross-stack reference
(service stacks import only from the environment's shared layers). Every queue is encrypted with
the environment's data key: SQS calls KMS on behalf of the producer (kms:GenerateDataKey) and the
consumer (kms:Decrypt), whose IAM policies must allow it (Amazon SQS Developer Guide, "Key
management": "Example 1: Allow users to send single messages to a queue with SSE-KMS",
"Example 2: ... receive"). A data key is reused for ``KmsDataKeyReusePeriodSeconds`` (300 s,
the default), which bounds the KMS calls.
"""

from __future__ import annotations

from typing import Any

from awacs import kms as kms_actions
from awacs import sqs as sqs_actions
from awacs.aws import Statement, StringEquals
from troposphere import GetAtt, Sub, sqs

from infra_templates import iam, naming
from infra_templates.config import Environment, Service
from infra_templates.layer import LayerContext
from templates.contracts import Keys

# The longest retention SQS allows (14 days, Amazon SQS API Reference, SetQueueAttributes
# MessageRetentionPeriod): a dead letter waits that long for someone to look.
DEAD_LETTER_RETENTION_SECONDS = 1_209_600


def queue_name(env: Environment, worker: str) -> str:
    """The physical name of ``worker``'s queue: its stack's name (``naming.queue_name``)."""
    return naming.queue_name(env.project, env.name, worker)


def queue_arn(env: Environment, worker: str) -> Sub:
    return Sub("arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:%s" % queue_name(env, worker))


def queue_url(env: Environment, worker: str) -> Sub:
    """The queue's URL, as SQS forms it (``https://sqs.<region>.<url-suffix>/<account>/<name>``)."""
    return Sub("https://sqs.${AWS::Region}.${AWS::URLSuffix}/${AWS::AccountId}/%s" % queue_name(env, worker))


def variable(worker: str) -> str:
    """The task's variable holding the URL of ``worker``'s queue (``QUEUE_URL`` for its own)."""
    return "QUEUE_URL_" + worker.upper().replace("-", "_")


def variables(env: Environment, name: str, service: Service) -> dict[str, Any]:
    """The queue URLs a task gets: its own queue's (a worker) and those of the workers it sends to."""
    found: dict[str, Any] = {}
    if service.kind == "worker":
        found["QUEUE_URL"] = queue_url(env, name)
    for worker in service.sends_to:
        found[variable(worker)] = queue_url(env, worker)
    return found


def encrypted_queue(logical_id: str, ctx: LayerContext, **properties: Any) -> sqs.Queue:
    """A queue encrypted with the environment's data key. Its messages are work in transit, not
    records: the queue goes with its stack (a retained, named queue would block the next create)."""
    queue = sqs.Queue(
        logical_id,
        KmsMasterKeyId=ctx.import_value(Keys.DATA_KEY_ARN),
        KmsDataKeyReusePeriodSeconds=300,
        **properties,
    )
    queue.DeletionPolicy = "Delete"
    queue.UpdateReplacePolicy = "Delete"
    return queue


def dead_letter_queue(ctx: LayerContext, *, source: Any | None = None) -> sqs.Queue:
    """``DeadLetterQueue``: 14 days of retention; with ``source`` (a queue ARN), only that queue may
    use it as its dead-letter queue (RedriveAllowPolicy ``byQueue``, Amazon SQS Developer Guide,
    "Using dead-letter queues")."""
    dlq = encrypted_queue("DeadLetterQueue", ctx, MessageRetentionPeriod=DEAD_LETTER_RETENTION_SECONDS)
    if source is not None:
        dlq.RedriveAllowPolicy = {"redrivePermission": "byQueue", "sourceQueueArns": [source]}
    return dlq


def _key_via_sqs(ctx: LayerContext, sid: str, actions: list[Any]) -> Statement:
    return iam.allow(
        sid,
        actions,
        [ctx.import_value(Keys.DATA_KEY_ARN)],
        conditions=[StringEquals("kms:ViaService", Sub("sqs.${AWS::Region}.amazonaws.com"))],
    )


def statements(ctx: LayerContext, name: str, service: Service) -> list[Statement]:
    """The task role's queue permissions: a worker consumes its own queue; any service may send to
    the queues of the workers it names in ``sends_to``."""
    env = ctx.env
    found: list[Statement] = []
    key_actions: list[Any] = []
    if service.kind == "worker":
        found.append(
            iam.allow(
                "ConsumeThisServicesQueue",
                [
                    sqs_actions.ReceiveMessage,
                    sqs_actions.DeleteMessage,
                    sqs_actions.ChangeMessageVisibility,
                    sqs_actions.GetQueueAttributes,
                    sqs_actions.GetQueueUrl,
                ],
                [queue_arn(env, name)],
            )
        )
        key_actions.append(kms_actions.Decrypt)
    if service.sends_to:
        found.append(
            iam.allow(
                "SendToTheWorkersQueues",
                [sqs_actions.SendMessage, sqs_actions.GetQueueUrl],
                [queue_arn(env, worker) for worker in service.sends_to],
            )
        )
        key_actions = [kms_actions.Decrypt, kms_actions.GenerateDataKey]
    if key_actions:
        found.append(_key_via_sqs(ctx, "UseTheDataKeyThroughSqs", key_actions))
    return found


def send_to_dead_letter_queue(ctx: LayerContext, dlq: sqs.Queue) -> list[Statement]:
    """What EventBridge Scheduler's role needs to put an undelivered run in ``dlq`` (EventBridge
    Scheduler User Guide, "Configuring a dead-letter queue": sqs:SendMessage on the queue, and the
    KMS permissions of a producer for an encrypted one)."""
    return [
        iam.allow("SendUndeliveredRunsToTheDeadLetterQueue", [sqs_actions.SendMessage], [GetAtt(dlq, "Arn")]),
        _key_via_sqs(ctx, "EncryptThemWithTheDataKey", [kms_actions.Decrypt, kms_actions.GenerateDataKey]),
    ]
