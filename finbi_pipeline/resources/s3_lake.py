"""The lake on S3: every prefix (raw/, staging/, curated/, quarantine/, ingest_log/,
analytics/, athena-results/) in one bucket, reached through `dagster_aws.s3.S3Resource`.

* Listing pages through `list_objects_v2` with `StartAfter`, so the upload sensor's cursor
  works on any number of keys and never loads a whole prefix at once.
* An object's version is its LastModified second and its ETag, the same from a listing and
  from `head_object` (`list_objects_v2` carries no VersionId). The ETag alone is a hash of
  the content: uploading a key's earlier content again would look like a version already
  ingested, and the key would keep the rows of the content it replaced.
* A write is one `put_object` (or a managed upload that completes a multipart upload):
  S3 makes the new object visible whole or not at all, so it is atomic.
* A move is copy + delete: the target is replaced atomically, the source goes after.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

from botocore.exceptions import ClientError
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr

from finbi_pipeline.resources.lake import Lake, LakeObject

# delete_objects takes at most 1000 keys per request.
_DELETE_BATCH = 1000


class S3Lake(Lake):
    """The lake as keys in `bucket`."""

    bucket: str
    s3: S3Resource
    _client = PrivateAttr(default=None)
    _client_lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def client(self):
        """One S3 client per resource instance (clients are thread-safe and costly to make:
        threads that ask for it at once, staging workers or the sensor's HEADs, wait for the
        first one's instead of each making their own)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self.s3.get_client()
        return self._client

    def list_objects(
        self, prefix: str, start_after: str | None = None, page_size: int = 1000
    ) -> Iterator[LakeObject]:
        params = {
            "Bucket": self.bucket,
            "Prefix": prefix,
            "PaginationConfig": {"PageSize": page_size},
        }
        if start_after:
            params["StartAfter"] = start_after
        # S3 returns keys in UTF-8 binary order, which is Python's str order for the ASCII
        # keys the pipeline writes: cursors compare the same way as LocalLake's.
        for page in self.client.get_paginator("list_objects_v2").paginate(**params):
            for entry in page.get("Contents", []):
                if entry["Key"].endswith("/"):  # console-created "folder" markers
                    continue
                yield LakeObject(
                    key=entry["Key"],
                    version=_version(entry["ETag"], entry["LastModified"]),
                    size=int(entry["Size"]),
                    last_modified=entry["LastModified"].timestamp(),
                )

    def list_children(self, prefix: str) -> tuple[list[str], list[str]]:
        folders, objects = [], []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        )
        for page in pages:
            folders += [entry["Prefix"] for entry in page.get("CommonPrefixes", [])]
            objects += [e["Key"] for e in page.get("Contents", []) if e["Key"] != prefix]
        return sorted(folders), sorted(objects)

    def head(self, key: str) -> LakeObject | None:
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return LakeObject(
            key=key,
            version=_version(response["ETag"], response["LastModified"]),
            size=int(response["ContentLength"]),
            last_modified=response["LastModified"].timestamp(),
        )

    def read_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        params = {"Bucket": self.bucket, "Key": key}
        if max_bytes is not None:
            if max_bytes <= 0:
                return b""
            params["Range"] = f"bytes=0-{max_bytes - 1}"
        return self.client.get_object(**params)["Body"].read()

    def iter_bytes(self, key: str, chunk_size: int = 1 << 22) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        yield from body.iter_chunks(chunk_size)

    def read_range(self, key: str, suffix_bytes: int) -> bytes:
        """The last `suffix_bytes` of an object (a Parquet footer, say)."""
        response = self.client.get_object(
            Bucket=self.bucket, Key=key, Range=f"bytes=-{suffix_bytes}"
        )
        return response["Body"].read()

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def upload_file(self, path: Path, key: str) -> LakeObject:
        # Managed upload: multipart for big files, still atomic (visible on completion).
        self.client.upload_file(str(path), self.bucket, key)
        obj = self.head(key)
        assert obj is not None
        return obj

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under `prefix`, folder markers included: Athena refuses a
        CTAS into a location where a marker (`<table>/`, made by the S3 console) exists."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        self.delete([entry["Key"] for page in pages for entry in page.get("Contents", [])])

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise OSError(
                    f"could not delete {len(errors)} object(s) from s3://{self.bucket}/, "
                    f"e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )

    def move(self, source_key: str, target_key: str) -> None:
        # Managed copy: a single CopyObject below 5 GB, a multipart copy above.
        self.client.copy({"Bucket": self.bucket, "Key": source_key}, self.bucket, target_key)
        self.delete([source_key])

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def key_of(self, uri: str) -> str:
        """The key of an s3:// URI in this bucket."""
        prefix = f"s3://{self.bucket}/"
        if not uri.startswith(prefix):
            raise ValueError(f"{uri!r} is not in the lake bucket s3://{self.bucket}/")
        return uri[len(prefix) :]


def _version(etag: str, last_modified: dt.datetime) -> str:
    """`<LastModified, epoch seconds, hex>-<ETag>`: seconds first, so that the versions of a
    key sort in time order (as LocalLake's do), and to the second, as `head_object` says it."""
    etag = etag.strip('"')
    return f"{int(last_modified.timestamp()):x}-{etag}"
