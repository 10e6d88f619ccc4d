"""The s3 plugin's pure logic, no server: the spool's files, error messages, credentials files."""

from __future__ import annotations

import json

import botocore.exceptions as bex
import pytest
from valt_storage_s3.client import StoreUnreachable, read_credentials, storage_error
from valt_storage_s3.config import S3StorageConfig
from valt_storage_s3.spool import Part, S3SpoolEntry

from valt_core.errors import NotFound, StorageError
from valt_core.storage.spool import CLOSED, Spool


def config(tmp_path, **kw) -> S3StorageConfig:
    return S3StorageConfig(bucket="valt-b", spool_dir=tmp_path / "spool", **kw)


def test_the_spool_finds_what_an_earlier_process_left_oldest_first(tmp_path):
    spool = Spool(tmp_path / "spool", S3SpoolEntry)
    older, newer = spool.entry("rec/1/a.mp4"), spool.entry("rec/1/b.mp4")
    newer.seq = older.seq + 1
    for entry, data in ((newer, b"bbbb"), (older, b"aaaaaaaa")):
        with spool.create(entry) as f:
            f.write(data)
    older.state, older.size = CLOSED, 8
    older.parts = [Part(1, '"etag"', "sum", 5)]
    older.save()
    (tmp_path / "spool" / "rec" / "1" / "c.mp4.spool.json.tmp-1234").write_text("{")  # a torn save
    found = spool.load()
    assert [(e.key, e.state, e.size, e.sent) for e in found] == [
        ("rec/1/a.mp4", "closed", 8, 5), ("rec/1/b.mp4", "open", 4, 0)]
    assert not list((tmp_path / "spool").rglob("*.tmp-*"))


def test_parts_past_what_the_disk_kept_restart_the_upload(tmp_path):
    spool = Spool(tmp_path / "spool", S3SpoolEntry)
    entry = spool.entry("k.mp4")
    with spool.create(entry) as f:
        f.write(b"x" * 10)
    entry.upload_id, entry.parts = "u-1", [Part(1, "e", "s", 20)]
    entry.save()
    (loaded,) = spool.load()
    assert (loaded.upload_id, loaded.parts, loaded.size) == (None, [], 10)


def test_removing_an_entry_prunes_empty_directories_but_not_the_spool(tmp_path):
    spool = Spool(tmp_path / "spool", S3SpoolEntry)
    a, b = spool.entry("r/1/a.mp4"), spool.entry("r/2/b.mp4")
    for entry in (a, b):
        spool.create(entry).close()
    a.remove(spool.root)
    assert not (spool.root / "r" / "1").exists() and (spool.root / "r" / "2").exists()
    b.remove(spool.root)
    assert spool.root.exists() and list(spool.root.iterdir()) == []
    assert json.loads(json.dumps(a.to_json()))["key"] == "r/1/a.mp4"


def client_error(code: str, status: int, message: str = "") -> bex.ClientError:
    return bex.ClientError({"Error": {"Code": code, "Message": message},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


def test_store_errors_are_told_apart_by_code_and_never_quote_the_store(tmp_path):
    cfg = config(tmp_path)
    leaky = "the secret is hunter2"
    cases = {
        ("NoSuchKey", 404): NotFound, ("AccessDenied", 403): StorageError,
        ("SignatureDoesNotMatch", 403): StorageError, ("InternalError", 500): StoreUnreachable,
        ("SlowDown", 503): StoreUnreachable,
    }
    for (code, status), kind in cases.items():
        err = storage_error(client_error(code, status, leaky), "uploading k.mp4", cfg)
        assert type(err) is kind, code
        assert "hunter2" not in str(err) and "uploading k.mp4" in str(err)
    down = storage_error(bex.EndpointConnectionError(endpoint_url="http://x"), "reading k", cfg)
    assert isinstance(down, StoreUnreachable) and not down.answered
    assert "no credentials" in str(storage_error(bex.NoCredentialsError(), "checking", cfg))


def test_a_credentials_file_is_read_by_profile_and_its_problems_named(tmp_path):
    creds = tmp_path / "credentials"
    creds.write_text("[valt]\naws_access_key_id = AKIA1\naws_secret_access_key = s3cr3t\n[half]\n"
                     "aws_access_key_id = AKIA2\n")
    assert read_credentials(config(tmp_path, credentials="file", credentials_file=creds, profile="valt")) == {
        "aws_access_key_id": "AKIA1", "aws_secret_access_key": "s3cr3t"}
    with pytest.raises(StorageError, match=r"\[half\].*lacks") as err:
        read_credentials(config(tmp_path, credentials="file", credentials_file=creds, profile="half"))
    assert "AKIA2" not in str(err.value)
    with pytest.raises(StorageError, match="cannot read credentials file"):
        read_credentials(config(tmp_path, credentials="file", credentials_file=tmp_path / "absent"))
    assert read_credentials(config(tmp_path)) == {}


def test_presigned_urls_point_at_the_origins_the_pages_may_connect_to(tmp_path):
    from valt_storage_s3.backend import S3Storage

    def origins(**kw):
        return S3Storage(config(tmp_path, **kw)).presigned_origins()

    assert origins(endpoint_url="http://127.0.0.1:9000", addressing_style="path") == ["http://127.0.0.1:9000"]
    assert origins(endpoint_url="https://s3.example.org", addressing_style="virtual") == [
        "https://valt-b.s3.example.org"]
    assert origins(endpoint_url="https://s3.example.org") == ["https://s3.example.org", "https://valt-b.s3.example.org"]
    assert origins(region="eu-west-1") == ["https://s3.eu-west-1.amazonaws.com",
                                           "https://valt-b.s3.eu-west-1.amazonaws.com"]
