"""An SQS queue subscribed to an SNS topic: the messages an email subscriber would get, read back
through the real APIs (moto delivers SNS to SQS).

    inbox = SnsInbox.subscribe(sns, sqs, topic_arn, "alerts-inbox")
    ... publish ...
    [message] = inbox.read()      # {"subject", "body", "runId", "status"}

moto delivers from a KMS-encrypted topic without a key policy for SQS (real SNS needs the queue's
principal allowed on the key); the topic, the publisher and the messages are real. Used by the
runtime tests, the demo and the demo's test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SnsInbox:
    sns: Any
    sqs: Any
    queue_url: str
    subscription_arn: str
    received: list[dict] = field(default_factory=list)

    @classmethod
    def subscribe(cls, sns: Any, sqs: Any, topic_arn: str, queue_name: str) -> SnsInbox:
        queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        subscription = sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn["Attributes"]["QueueArn"],
            ReturnSubscriptionArn=True,
        )
        return cls(sns, sqs, queue_url, subscription["SubscriptionArn"])

    def read(self) -> list[dict]:
        """Every message so far, oldest first: subject, body and the message attributes."""
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            if not batch.get("Messages"):
                return list(self.received)
            for message in batch["Messages"]:
                envelope = json.loads(message["Body"])
                attributes = {
                    name: value["Value"]
                    for name, value in envelope.get("MessageAttributes", {}).items()
                }
                self.received.append(
                    {"subject": envelope["Subject"], "body": envelope["Message"], **attributes}
                )
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def delete(self) -> None:
        self.sns.unsubscribe(SubscriptionArn=self.subscription_arn)
        self.sqs.delete_queue(QueueUrl=self.queue_url)
