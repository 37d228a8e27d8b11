"""UploadEvents against moto: the lake bucket's S3 notifications, read from SQS."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from finbi_pipeline.resources.upload_events import UploadEvents, created_keys
from finbi_pipeline_tests.aws.fixtures import BUCKET, REGION


@pytest.fixture
def queue_url(moto_aws) -> str:
    """A queue receiving the bucket's ObjectCreated notifications under raw/."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="finbi-uploads")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    boto3.client("s3", region_name=REGION).put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "raw/"}]}},
                }
            ]
        },
    )
    return url


def test_created_keys_are_read_and_every_message_acknowledged(lake, queue_url):
    lake.write_bytes("raw/sales/a b+c.csv", b"x,y\n1,2\n")  # a key that needs URL-decoding
    lake.write_bytes("staging/sales/x.json", b"{}")  # outside raw/: no notification
    events = UploadEvents(queue_url=queue_url, region=REGION)

    created, receipts = events.receive(max_messages=100)

    assert created == ["raw/sales/a b+c.csv"]
    assert len(receipts) == 2  # S3's test event is a message too, and is acknowledged
    events.acknowledge(receipts)
    assert events.receive(max_messages=100) == ([], [])


def test_receive_stops_at_max_messages(lake, queue_url):
    for i in range(25):
        lake.write_bytes(f"raw/interactions/{i:02d}.csv", b"x")
    events = UploadEvents(queue_url=queue_url, region=REGION)
    created, receipts = events.receive(max_messages=12)
    assert len(receipts) == 12
    events.acknowledge(receipts)
    rest, more = events.receive(max_messages=100)
    assert len(created) + len(rest) == 25
    assert set(created).isdisjoint(rest)


def test_only_created_objects_count():
    body = (
        '{"Records": [{"eventName": "ObjectRemoved:Delete", "eventTime": "2024-06-01T00:00:00Z",'
        ' "s3": {"object": {"key": "raw/sales/a.csv", "eTag": "e1"}}},'
        ' {"eventName": "ObjectCreated:CompleteMultipartUpload",'
        ' "eventTime": "2024-06-01T00:00:01.500Z",'
        ' "s3": {"object": {"key": "raw/sales/big%20file.csv", "size": 9, "eTag": "e2-3"}}}]}'
    )
    assert created_keys(body) == ["raw/sales/big file.csv"]
    assert created_keys('{"Service": "Amazon S3", "Event": "s3:TestEvent"}') == []


def test_a_message_sqs_would_not_delete_is_logged(caplog):
    events = UploadEvents(queue_url="https://sqs.us-east-1.amazonaws.com/1/q", region=REGION)
    client = events._client()
    object.__setattr__(events, "_client", lambda: client)  # one client, for the stubber
    entries = [{"Id": "0", "ReceiptHandle": "r0"}, {"Id": "1", "ReceiptHandle": "r1"}]
    failed = {"Id": "1", "SenderFault": True, "Code": "ReceiptHandleIsInvalid", "Message": "gone"}
    with Stubber(client) as stub:
        stub.add_response(
            "delete_message_batch",
            {"Successful": [{"Id": "0"}], "Failed": [failed]},
            {"QueueUrl": events.queue_url, "Entries": entries},
        )
        events.acknowledge(["r0", "r1"])
    assert "SQS did not delete upload event message 1" in caplog.text
    assert "ReceiptHandleIsInvalid: gone" in caplog.text
