"""Upload events: how the upload sensor hears of new objects without listing the landing zone.

Without events (locally, and on AWS without a queue) the sensor lists the landing prefixes
every tick, which costs in proportion to the keys stored there. With a queue, `UploadEvents`
reads the S3 event notifications (ObjectCreated) that the lake bucket sends to SQS
(`infra/finbi.yaml`), so a tick costs what landed since the last one, however many uploads
the landing zone already holds.

Notifications are at-least-once and can be late or, in rare cases, lost; the sensor still
lists the landing zone now and then (`FULL_LISTING_SECONDS` in `sensors.py`) and decides
newness by the instance's partitions, so a duplicate never runs twice and a lost event only
waits for the next listing.
"""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

import dagster as dg

# SQS returns at most 10 messages per call.
_BATCH = 10


class UploadEvents(dg.ConfigurableResource):
    """Objects created in the lake, from S3 notifications on an SQS queue.

    Without `queue_url` (locally, and on AWS without FINBI_UPLOAD_QUEUE_URL) there is no
    feed and the sensor lists the landing zone.
    """

    queue_url: str = ""
    region: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.queue_url)

    def receive(self, max_messages: int) -> tuple[list[str], list[str]]:
        """Keys of created objects from up to `max_messages` messages, and every message's
        receipt (messages that carry no object, such as S3's test event, included)."""
        if not self.enabled:
            return [], []
        sqs = self._client()
        keys, receipts = [], []
        while len(receipts) < max_messages:
            messages = sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(_BATCH, max_messages - len(receipts)),
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                receipts.append(message["ReceiptHandle"])
                keys += created_keys(message["Body"])
        return keys, receipts

    def acknowledge(self, receipts: list[str]) -> None:
        """Remove handled messages from the queue; a message SQS would not delete (an expired
        receipt handle) is logged, and comes back: a later tick finds its upload known."""
        if not receipts:
            return
        sqs = self._client()
        for start in range(0, len(receipts), _BATCH):
            entries = [
                {"Id": str(i), "ReceiptHandle": receipt}
                for i, receipt in enumerate(receipts[start : start + _BATCH])
            ]
            response = sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            # A 200 answer may still list entries that failed (SQS's DeleteMessageBatch).
            for failed in response.get("Failed", []):
                dg.get_dagster_logger().warning(
                    f"SQS did not delete upload event message {failed['Id']} of "
                    f"{self.queue_url}: {failed.get('Code')}: {failed.get('Message', '')}; "
                    "it will be received again"
                )

    def _client(self):
        # Imported here: boto3 and dagster_aws cost the local target half a second to load.
        from finbi_pipeline.resources.aws import boto_client

        return boto_client("sqs", self.region)


def created_keys(body: str) -> list[str]:
    """The keys of the objects an S3 event notification says were created.

    Only keys: an event says what was created, not what the key holds when the sensor reads
    it (a later upload may have replaced it), and a run reads what it holds. The sensor asks
    the lake for each key's current version. Keys arrive URL-encoded, spaces as '+'.
    """
    return [
        unquote_plus(record["s3"]["object"]["key"])
        for record in json.loads(body).get("Records", [])  # s3:TestEvent has none
        if record.get("eventName", "").startswith("ObjectCreated:")
    ]
