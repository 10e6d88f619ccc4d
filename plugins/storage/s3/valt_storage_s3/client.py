"""Talking to S3: the client, where its credentials come from, and errors made ours.

No Valt framework here beyond the error classes. Messages are built from the store's error *code*
only, never from its text or the request, so a key or a signature can never end up in one.
"""

from __future__ import annotations

import asyncio
import base64
import configparser
import hashlib
import os

import aiohttp
import botocore.exceptions as bex
from botocore.config import Config as BotoConfig

from valt_core.errors import NotFound, StorageError

from .config import S3StorageConfig

#: What the store answers when an object or a version is absent.
MISSING_CODES = {"404", "NoSuchKey", "NoSuchVersion", "NotFound"}


class StoreUnreachable(StorageError):
    """The endpoint did not answer (down, timed out, refused), or failed (5xx): retried later."""

    #: True for a server-side failure (it answered 5xx), False when nothing answered at all.
    answered = False


class ChecksumMismatch(StorageError):
    """The store reports another SHA-256 of uploaded bytes than we computed."""


class UploadGone(StorageError):
    """The multipart upload no longer exists at the store (aborted, expired): start it again."""


def sha256_b64(data: bytes) -> str:
    """SHA-256 of ``data``, base64-encoded as S3's ``x-amz-checksum-sha256`` header carries it."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def confirm_checksum(what: str, sent: str, answer: dict) -> None:
    """Raise :class:`ChecksumMismatch` if the store's answer names another SHA-256 than ``sent``.

    Stores that check the header refuse a wrong body themselves; this catches one that does not
    (or a proxy that changed the body) before the object is completed from bad parts.
    """
    got = answer.get("ChecksumSHA256")
    if got is not None and got != sent:
        raise ChecksumMismatch(f"s3: the store's SHA-256 of {what} differs from ours: the upload is retried")


def error_code(err: BaseException) -> str | None:
    """The S3 error code of a client error (``NoSuchKey``, ``AccessDenied``...), else ``None``."""
    if isinstance(err, bex.ClientError):
        return str(err.response.get("Error", {}).get("Code", "")) or None
    return None


def storage_error(err: BaseException, doing: str, config: S3StorageConfig) -> StorageError:
    """Our error for an SDK or network failure while ``doing`` (e.g. ``"reading recordings/1/a.mp4"``)."""
    where = config.endpoint_url or "AWS S3"
    if isinstance(err, StorageError):
        return err
    if isinstance(err, bex.ClientError):
        code = error_code(err) or "unknown"
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in MISSING_CODES:
            return NotFound(f"no stored object: {doing}")
        if code in ("NoSuchUpload",):
            return UploadGone(f"s3: the multipart upload is gone ({code}) while {doing}")
        if code == "InvalidAccessKeyId":
            why = "the store does not know the access key (InvalidAccessKeyId): check the credentials"
        elif code == "SignatureDoesNotMatch":
            why = "the store refused the request's signature (SignatureDoesNotMatch): check the secret key"
        elif code in ("AccessDenied", "AllAccessDisabled"):
            why = f"access denied ({code}): the credentials lack a permission this needs (see docs/storage-s3.md)"
        elif code == "403":
            why = "access refused (HTTP 403): wrong credentials or a missing permission"
        elif code == "NoSuchBucket":
            why = f"bucket {config.bucket!r} does not exist (NoSuchBucket)"
        elif isinstance(status, int) and status >= 500:
            failed = StoreUnreachable(f"s3: {where} failed ({code}, HTTP {status}) while {doing}")
            failed.answered = True
            return failed
        else:
            why = f"the store refused it ({code}, HTTP {status})"
        return StorageError(f"s3: {why}, while {doing}")
    if isinstance(err, (bex.NoCredentialsError, bex.PartialCredentialsError)):
        return StorageError(f"s3: no credentials found (credentials = {config.credentials!r}) while {doing}")
    if isinstance(err, (bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ReadTimeoutError,
                        bex.ConnectionClosedError, bex.HTTPClientError, aiohttp.ClientError,
                        asyncio.TimeoutError, ConnectionError, OSError)):
        return StoreUnreachable(f"s3: cannot reach {where} ({type(err).__name__}) while {doing}")
    return StorageError(f"s3: {type(err).__name__} while {doing}")


def read_credentials(config: S3StorageConfig) -> dict[str, str]:
    """Keyword arguments for the SDK session: empty for the default chain, else the keys themselves.

    Read when a client is made (so a rotated file is picked up by the next one); errors name the
    variable, file or profile, never a value.
    """
    if config.credentials == "default":
        return {}
    if config.credentials == "environment":
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            raise StorageError("s3: credentials = 'environment' but AWS_ACCESS_KEY_ID or "
                               "AWS_SECRET_ACCESS_KEY is not set")
        found = {"aws_access_key_id": key, "aws_secret_access_key": secret}
        if os.environ.get("AWS_SESSION_TOKEN"):
            found["aws_session_token"] = os.environ["AWS_SESSION_TOKEN"]
        return found
    path = config.credentials_file
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, configparser.Error) as err:
        raise StorageError(f"s3: cannot read credentials file {path} ({type(err).__name__})") from None
    if not parser.has_section(config.profile):
        raise StorageError(f"s3: credentials file {path} has no profile [{config.profile}]")
    section = parser[config.profile]
    found = {}
    for name in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"):
        if section.get(name, "").strip():
            found[name] = section[name].strip()
    if "aws_access_key_id" not in found or "aws_secret_access_key" not in found:
        raise StorageError(f"s3: profile [{config.profile}] of {path} lacks aws_access_key_id or "
                           "aws_secret_access_key")
    return found


def client_kwargs(config: S3StorageConfig) -> dict:
    """Arguments of ``session.client("s3", ...)``: endpoint, timeouts, retries, addressing."""
    boto = BotoConfig(
        connect_timeout=config.connect_timeout_s,
        read_timeout=config.read_timeout_s,
        retries={"max_attempts": config.retries + 1, "mode": "standard"},
        s3={"addressing_style": config.addressing_style},
        signature_version="s3v4",
    )
    kwargs: dict = {"region_name": config.region, "config": boto}
    if config.endpoint_url:
        kwargs["endpoint_url"] = config.endpoint_url
    return kwargs
