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

import datetime as dt
import json
from urllib.parse import unquote_plus

import dagster as dg

from finbi_pipeline.resources.lake import LakeObject

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

    def receive(self, max_messages: int) -> tuple[list[LakeObject], list[str]]:
        """Created objects from up to `max_messages` messages, and every message's receipt
        (messages that carry no object, such as S3's test event, included)."""
        if not self.enabled:
            return [], []
        sqs = self._client()
        objects, receipts = [], []
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
                objects += created_objects(message["Body"])
        return objects, receipts

    def acknowledge(self, receipts: list[str]) -> None:
        """Remove handled messages from the queue."""
        if not receipts:
            return
        sqs = self._client()
        for start in range(0, len(receipts), _BATCH):
            entries = [
                {"Id": str(i), "ReceiptHandle": receipt}
                for i, receipt in enumerate(receipts[start : start + _BATCH])
            ]
            sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)

    def _client(self):
        # Imported here: boto3 and dagster_aws cost the local target half a second to load.
        from finbi_pipeline.resources.aws import boto_client

        return boto_client("sqs", self.region)


def created_objects(body: str) -> list[LakeObject]:
    """The objects an S3 event notification says were created.

    The version is the ETag, as in the lake's listings (`list_objects_v2` carries no
    VersionId), so an upload has the same partition key however the sensor heard of it.
    Keys arrive URL-encoded, spaces as '+'.
    """
    objects = []
    for record in json.loads(body).get("Records", []):  # s3:TestEvent has none
        if not record.get("eventName", "").startswith("ObjectCreated:"):
            continue
        created = record["s3"]["object"]
        when = dt.datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00"))
        objects.append(
            LakeObject(
                key=unquote_plus(created["key"]),
                version=str(created["eTag"]).strip('"'),
                size=int(created.get("size", 0)),
                last_modified=when.timestamp(),
            )
        )
    return objects
