"""Uploads: one object key at one version in `raw/<source>/`, a Dagster dynamic partition.

The partition key is `<object key>@<version>`, so a new version of a key is a new partition
and the same version is never ingested twice by the sensor.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import dagster as dg

from finbi_pipeline.resources.lake import Lake, LakeObject

uploads_partitions = dg.DynamicPartitionsDefinition(name="uploads")

RAW_PREFIX = "raw/"


@dataclass(frozen=True)
class Upload:
    """An object key at a version, and the source its prefix names."""

    key: str
    version: str

    @classmethod
    def from_partition_key(cls, partition_key: str) -> Upload:
        key, sep, version = partition_key.rpartition("@")
        if not sep or not key.startswith(RAW_PREFIX) or key.count("/") < 2:
            raise ValueError(f"{partition_key!r} is not an upload (raw/<source>/<file>@<version>)")
        return cls(key=key, version=version)

    @classmethod
    def from_object(cls, obj: LakeObject) -> Upload:
        return cls(key=obj.key, version=obj.version)

    @property
    def partition_key(self) -> str:
        return f"{self.key}@{self.version}"

    @property
    def upload_id(self) -> str:
        return self.partition_key

    @property
    def source(self) -> str:
        return self.key.split("/", 2)[1]

    @property
    def slug(self) -> str:
        """A file-name-safe, stable name for what this key contributes (same for every version)."""
        relative = self.key.split("/", 2)[2]
        readable = re.sub(r"[^A-Za-z0-9._-]+", "_", relative)[-80:]
        return f"{readable}-{hashlib.sha1(self.key.encode()).hexdigest()[:10]}"


# File names that are no uploads: hidden ones, and those editors and unfinished copies
# leave behind (`~$report.csv`, `x.csv~`, `x.csv.part`, `x.csv.tmp`, `x.csv.crdownload`).
# A file copied in by hand under such a name and renamed when complete is seen once, whole.
_TEMPORARY_NAME = re.compile(
    r"^[.~]|~$|\.(part|partial|tmp|temp|crdownload|download|swp)$", re.IGNORECASE
)


def landing_prefix(source: str) -> str:
    return f"{RAW_PREFIX}{source}/"


def is_upload(key: str) -> bool:
    """Whether an object in the landing zone is an upload, not a temporary file."""
    return not _TEMPORARY_NAME.search(key.rsplit("/", 1)[-1])


def outside_sources(lake: Lake, sources: list[str]) -> list[str]:
    """What the landing zone holds that no run ingests: folders of sources not declared
    (`raw/sale/` for `sales`) and files directly under `raw/`, as keys."""
    folders, objects = lake.list_children(RAW_PREFIX)
    declared = {landing_prefix(source) for source in sources}
    return [f for f in folders if f not in declared] + [o for o in objects if is_upload(o)]


def list_uploads(lake: Lake, sources: list[str]) -> list[Upload]:
    """Every upload currently in the landing zone of the given sources."""
    return [
        Upload.from_object(obj)
        for source in sorted(sources)
        for obj in lake.list_objects(landing_prefix(source))
        if is_upload(obj.key)
    ]
