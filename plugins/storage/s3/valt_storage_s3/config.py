"""Settings of the ``s3`` storage backend (``[storage.options]``).

No secret is a field here: credentials are referenced (the default chain, the environment, or a
shared-credentials file and profile) and read only when a client is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from valt_core.storage.spool import SpoolSettings


class S3StorageConfig(SpoolSettings):
    """Where objects go and how they get there."""

    model_config = ConfigDict(extra="forbid")
    bucket: str = Field(min_length=3, max_length=63, description="Name of the bucket that holds recordings and clips.")
    prefix: str = Field("", description="Key prefix inside the bucket (e.g. ``site-a/``); empty for the bucket's root.")
    endpoint_url: str | None = Field(
        None, description="URL of an S3-compatible endpoint (MinIO, Ceph, Wasabi...); unset for AWS itself.")
    region: str = Field("us-east-1", description="Region the requests are signed for.")
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto", description="``path`` (endpoint/bucket/key), ``virtual`` (bucket.endpoint/key) or ``auto``.")
    credentials: Literal["default", "environment", "file"] = Field(
        "default", description=(
            "Where the access key comes from: ``default`` is the SDK's chain (environment, ~/.aws files, "
            "the container's or instance's role); ``environment`` only AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; ``file`` the profile of ``credentials_file``."))
    credentials_file: Path | None = Field(
        None, description="A shared-credentials file (INI, as ~/.aws/credentials); needed with credentials = 'file'.")
    profile: str = Field("default", description="Section of ``credentials_file`` to read.")
    part_size_mb: int = Field(8, ge=5, le=5120, description=(
        "Size of a multipart upload's parts in MiB (S3's minimum is 5). An object smaller than this "
        "goes up in one PUT when it is closed."))
    upload_concurrency: int = Field(4, ge=1, le=64, description="Objects uploaded at the same time.")
    connect_timeout_s: float = Field(5.0, gt=0, description="Timeout of connecting to the endpoint.")
    read_timeout_s: float = Field(60.0, gt=0, description="Timeout of waiting for an answer (a part upload included).")
    retries: int = Field(2, ge=0, le=10, description="Retries of a failed request inside one attempt, by the SDK.")
    presign_max_s: int = Field(3600, ge=1, le=604800, description="Longest life of a presigned read URL, in seconds.")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        if any(part in ("", ".", "..") for part in value.split("/")) and value:
            raise ValueError("prefix must be slash-separated names, without '.' or '..'")
        return value + "/" if value else ""

    @model_validator(mode="after")
    def _file_given(self) -> "S3StorageConfig":
        if self.credentials == "file" and self.credentials_file is None:
            raise ValueError("credentials = 'file' needs credentials_file")
        return self

    @property
    def part_size(self) -> int:
        """Part size in bytes."""
        return self.part_size_mb * 1024 * 1024
