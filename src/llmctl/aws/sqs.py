"""SQS adapter: Karpenter's spot interruption queue (eksctl makes it, named after the cluster), found and removed."""

from __future__ import annotations

from llmctl.aws.errors import aws_call

NOT_FOUND = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def find_queue(sqs, name: str) -> dict | None:
    """{"url", "arn", "tags"} of the queue `name`, or None when there is none."""
    url = aws_call(f"looking up SQS queue {name}", lambda: sqs.get_queue_url(QueueName=name)["QueueUrl"],
                   absent=NOT_FOUND)
    if url is None:
        return None
    attrs = aws_call(f"reading SQS queue {name}", lambda: sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"], absent=NOT_FOUND)
    if attrs is None:
        return None
    tags = aws_call(f"reading the tags of SQS queue {name}", lambda: sqs.list_queue_tags(QueueUrl=url).get("Tags", {}),
                    absent=NOT_FOUND, default={})
    return {"url": url, "arn": attrs["QueueArn"], "tags": tags}


def delete_queue(sqs, url: str) -> None:
    aws_call(f"deleting SQS queue {url}", lambda: sqs.delete_queue(QueueUrl=url), absent=NOT_FOUND)
