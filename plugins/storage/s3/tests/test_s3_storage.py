"""The s3 backend against a real S3 endpoint (moto in server mode, tests/peers/s3.py).

One moto server per session; a fresh bucket per test. The same behaviours as the local
backend's tests, then what only S3 has: multipart uploads as fragments are flushed, outages that
lose nothing, Object Lock legal holds, presigned reads, credentials kept out of every message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid

import boto3
import botocore.exceptions
import httpx
import pytest
from valt_storage_s3.backend import S3Storage
from valt_storage_s3.client import ChecksumMismatch, confirm_checksum, sha256_b64
from valt_storage_s3.config import S3StorageConfig

from tests.peers.s3 import ACCESS_KEY, SECRET_KEY, MotoS3
from valt_core.errors import NotFound, StorageError, ValidationFailed

MiB = 1024 * 1024


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    server = MotoS3(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)


def s3(moto):
    """A plain boto3 client of the server: the test's own view of the bucket."""
    return boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


def new_bucket(moto, lock: bool = False) -> str:
    name = f"valt-{uuid.uuid4().hex[:12]}"
    s3(moto).create_bucket(Bucket=name, **({"ObjectLockEnabledForBucket": True} if lock else {}))
    return name


@pytest.fixture
def bucket(moto):
    return new_bucket(moto)


def make_store(moto, bucket, tmp_path, **kw) -> S3Storage:
    options = dict(bucket=bucket, endpoint_url=moto.url, credentials="environment", prefix="site-a",
                   spool_dir=tmp_path / "spool", part_size_mb=5, connect_timeout_s=1, read_timeout_s=2,
                   retries=0, retry_interval_s=0.1, retry_max_s=0.5)
    options.update(kw)
    return S3Storage(S3StorageConfig(**options))


@pytest.fixture
async def store(moto, bucket, tmp_path):
    backend = make_store(moto, bucket, tmp_path)
    yield backend
    await backend.aclose()


async def read_all(store, key, start=0, end=None):
    return b"".join([chunk async for chunk in store.read(key, start, end)])


def spool_files(tmp_path):
    root = tmp_path / "spool"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def until(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


# --- the storage contract, as the local backend's tests check it ------------------------------

async def test_streamed_write_then_ranged_reads(store, moto, bucket, tmp_path):
    data = os.urandom(700_000)
    key = "recordings/1/cam-2/000001.mp4"
    w = await store.open_writer(key)
    for i in range(0, len(data), 65536):
        await w.write(data[i:i + 65536])
    assert await w.close() == len(data)
    assert spool_files(tmp_path) == []  # in the store, nothing left behind
    assert s3(moto).head_object(Bucket=bucket, Key="site-a/" + key)["ContentLength"] == len(data)
    assert await store.size(key) == len(data)
    assert await read_all(store, key) == data
    assert await read_all(store, key, 1000, 300_123) == data[1000:300_123]
    assert await read_all(store, key, 699_990) == data[699_990:]
    assert await read_all(store, key, 5, 5) == b""
    assert await read_all(store, key, 700_000) == b""


async def test_flushed_bytes_are_spooled_before_close_and_the_object_appears_on_close(store, moto, bucket,
                                                                                      tmp_path):
    w = await store.open_writer("a/b.mp4")
    await w.write(b"fragment-1")
    await w.flush()
    assert (tmp_path / "spool" / "a" / "b.mp4.spool").read_bytes() == b"fragment-1"
    with pytest.raises(NotFound):
        await store.size("a/b.mp4")
    with pytest.raises(botocore.exceptions.ClientError):
        s3(moto).head_object(Bucket=bucket, Key="site-a/a/b.mp4")
    await w.close()
    assert await read_all(store, "a/b.mp4") == b"fragment-1"
    assert spool_files(tmp_path) == []


async def test_abort_and_delete(store, moto, bucket, tmp_path):
    w = await store.open_writer("x.mp4")
    await w.write(b"junk")
    await w.flush()
    await w.abort()
    assert spool_files(tmp_path) == []
    w = await store.open_writer("y.mp4")
    await w.write(b"keep")
    await w.close()
    await store.delete("y.mp4")
    await store.delete("y.mp4")  # absent: not an error
    with pytest.raises(NotFound):
        await read_all(store, "y.mp4")
    assert "Contents" not in s3(moto).list_objects_v2(Bucket=bucket)


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a//b", "a/./b", "", "a\\b", "a/.."])
async def test_unsafe_keys_are_refused(store, key):
    with pytest.raises(ValidationFailed):
        await store.open_writer(key)


async def test_usage_check_and_free_space(store, moto, bucket):
    await store.check()
    assert store.object_lock is False
    w = await store.open_writer("r/1.bin")
    await w.write(b"x" * 12345)
    await w.close()
    s3(moto).put_object(Bucket=bucket, Key="elsewhere/not-ours.bin", Body=b"y" * 99)  # outside the prefix
    usage = await store.usage()
    assert (usage.used_bytes, usage.free_bytes, usage.total_bytes) == (12345, None, None)
    assert await store.free_bytes() > 0  # the spool's disk
    assert store.pending().objects == 0


async def test_a_missing_bucket_or_unwritable_spool_is_a_storage_error(moto, tmp_path):
    missing = make_store(moto, "valt-no-such-bucket", tmp_path)
    with pytest.raises(StorageError, match="valt-no-such-bucket"):
        await missing.check()
    await missing.aclose()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    unwritable = make_store(moto, "whatever", tmp_path, spool_dir=blocker / "spool")
    with pytest.raises(StorageError, match="not writable"):
        await unwritable.check()


async def test_unfinished_writes_can_be_salvaged_or_discarded_after_a_crash(moto, bucket, tmp_path):
    before = make_store(moto, bucket, tmp_path)
    big = os.urandom(6 * MiB)
    for key, data in (("rec/1/a.mp4", b"rec/1/a.mp4"), ("rec/1/b.mp4", b"b"), ("other/c.mp4", b"c"),
                      ("rec/1/big.mp4", big)):
        w = await before.open_writer(key)
        await w.write(data)
        await w.flush()  # and then the process "dies": no close
    client = s3(moto)
    await until(lambda: len(client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1)
    # A stray upload, as a crash between starting one and noting it in the spool leaves.
    client.create_multipart_upload(Bucket=bucket, Key="site-a/rec/1/big.mp4", ChecksumAlgorithm="SHA256")
    await before.aclose()

    after = make_store(moto, bucket, tmp_path)
    try:
        assert await after.unfinished("rec") == ["rec/1/a.mp4", "rec/1/b.mp4", "rec/1/big.mp4"]
        assert await after.salvage("rec/1/a.mp4") == len(b"rec/1/a.mp4")
        assert await read_all(after, "rec/1/a.mp4") == b"rec/1/a.mp4"
        assert await after.salvage("rec/1/big.mp4") == len(big)
        assert await read_all(after, "rec/1/big.mp4") == big
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        assert await after.salvage("rec/1/zzz.mp4") is None
        await after.discard_unfinished("rec/1/b.mp4")
        assert await after.unfinished("rec") == []
        with pytest.raises(NotFound):
            await after.size("rec/1/b.mp4")
        assert await after.unfinished("other") == ["other/c.mp4"]
    finally:
        await after.aclose()


async def test_abandoned_write_keeps_its_flushed_bytes_for_salvage(store):
    w = await store.open_writer("rec/1/000001.mp4")
    await w.write(b"fragment-1")
    await w.flush()
    await w.write(b"torn piece")
    await w.abandon(len(b"fragment-1"))
    assert await store.unfinished("rec") == ["rec/1/000001.mp4"]
    assert await store.salvage("rec/1/000001.mp4") == len(b"fragment-1")
    assert await read_all(store, "rec/1/000001.mp4") == b"fragment-1"


# --- multipart, checksums -------------------------------------------------------------------

async def test_a_large_object_goes_up_in_parts_as_it_is_flushed(store, moto, bucket, tmp_path):
    data = os.urandom(12 * MiB + 12345)
    key = "recordings/2/track-1/000001.mp4"
    client = s3(moto)

    def parts() -> int:
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        if not uploads:
            return 0
        return len(client.list_parts(Bucket=bucket, Key=uploads[0]["Key"],
                                     UploadId=uploads[0]["UploadId"]).get("Parts", []))

    w = await store.open_writer(key)
    for i in range(0, len(data), MiB):
        await w.write(data[i:i + MiB])
        await w.flush()
        if i == 6 * MiB:
            await until(lambda: parts() == 1)
    await until(lambda: parts() == 2 and store.pending().bytes == len(data) - 10 * MiB)
    assert await w.close() == len(data)
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert client.head_object(Bucket=bucket, Key="site-a/" + key, PartNumber=1)["PartsCount"] == 3
    assert await read_all(store, key) == data
    assert await read_all(store, key, 5 * MiB - 10, 5 * MiB + 10) == data[5 * MiB - 10:5 * MiB + 10]
    assert spool_files(tmp_path) == []


def test_a_checksum_the_store_reports_differently_is_refused():
    sent = sha256_b64(b"part bytes")
    confirm_checksum("part 1", sent, {"ChecksumSHA256": sent})
    confirm_checksum("part 1", sent, {})  # a store that reports none
    with pytest.raises(ChecksumMismatch, match="part 1"):
        confirm_checksum("part 1", sent, {"ChecksumSHA256": sha256_b64(b"other bytes")})


async def test_a_part_whose_checksum_comes_back_wrong_is_uploaded_again(store, caplog):
    # moto never reports a wrong checksum, so the answer is changed on its way back, once.
    real_call = store._call
    tampered = []

    async def call(doing, method, **kwargs):
        answer = await real_call(doing, method, **kwargs)
        if method == "upload_part" and not tampered:
            tampered.append(kwargs["PartNumber"])
            answer = {**answer, "ChecksumSHA256": sha256_b64(b"not what we sent")}
        return answer

    store._call = call
    data = os.urandom(7 * MiB)
    w = await store.open_writer("k.mp4")
    await w.write(data)
    await w.flush()
    with caplog.at_level(logging.WARNING, logger="valt.storage.s3"):
        assert await w.close() == len(data)
    assert tampered == [1]
    assert "differs from ours" in caplog.text
    assert await read_all(store, "k.mp4") == data


# --- outages --------------------------------------------------------------------------------

async def test_an_outage_loses_nothing_and_the_spool_drains_when_the_store_returns(store, moto, bucket,
                                                                                  tmp_path):
    client = s3(moto)
    first, second = os.urandom(9 * MiB), os.urandom(300_000)
    w = await store.open_writer("rec/9/000001.mp4")
    await w.write(first[:6 * MiB])
    await w.flush()
    await until(lambda: len(client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1)
    moto.pause()
    try:
        await w.write(first[6 * MiB:])
        await w.flush()
        await w.close()  # returns: the rest is finished by the spool
        w2 = await store.open_writer("rec/9/000002.mp4")
        await w2.write(second)
        await w2.flush()
        started = time.monotonic()
        assert await w2.close() == len(second)
        assert time.monotonic() - started < 5
        assert store.store_error is not None
        assert store.pending().objects == 2
        started = time.monotonic()
        await store.check()  # the engine checks before each recording: a known outage passes at once
        assert time.monotonic() - started < 1
        # Playback meanwhile: served from the spool.
        assert await store.size("rec/9/000001.mp4") == len(first)
        assert await read_all(store, "rec/9/000001.mp4", 100, 7 * MiB) == first[100:7 * MiB]
        assert await read_all(store, "rec/9/000002.mp4") == second
        assert await store.presigned_url("rec/9/000002.mp4", 60) is None
        await asyncio.sleep(2)
    finally:
        moto.resume()
    await until(lambda: store.pending().objects == 0, timeout=20)
    assert store.store_error is None
    for key, data in (("rec/9/000001.mp4", first), ("rec/9/000002.mp4", second)):
        assert client.get_object(Bucket=bucket, Key="site-a/" + key)["Body"].read() == data
    assert spool_files(tmp_path) == []


async def test_objects_left_in_the_spool_by_a_stopped_process_are_uploaded_by_the_next(moto, bucket, tmp_path):
    before = make_store(moto, bucket, tmp_path)
    data = os.urandom(200_000)
    moto.pause()
    try:
        w = await before.open_writer("rec/3/000001.mp4")
        await w.write(data)
        await w.close()
        await before.aclose()
    finally:
        moto.resume()
    assert spool_files(tmp_path) == ["rec/3/000001.mp4.spool", "rec/3/000001.mp4.spool.json"]
    after = make_store(moto, bucket, tmp_path)
    try:
        await after.check()
        await until(lambda: after.pending().objects == 0)
        assert s3(moto).get_object(Bucket=bucket, Key="site-a/rec/3/000001.mp4")["Body"].read() == data
    finally:
        await after.aclose()


# --- Object Lock, presigned reads -----------------------------------------------------------

async def test_a_legal_hold_refuses_deletes_through_valt_and_directly(moto, tmp_path):
    bucket = new_bucket(moto, lock=True)
    store = make_store(moto, bucket, tmp_path)
    try:
        await store.check()
        assert store.object_lock is True
        w = await store.open_writer("rec/5/000001.mp4")
        await w.write(b"evidence")
        await w.close()
        assert await store.legal_hold("rec/5/000001.mp4") is False
        assert await store.set_legal_hold("rec/5/000001.mp4", True) is True
        assert await store.legal_hold("rec/5/000001.mp4") is True
        with pytest.raises(StorageError, match="legal hold"):
            await store.delete("rec/5/000001.mp4")
        client = s3(moto)
        versions = client.list_object_versions(Bucket=bucket)["Versions"]
        with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
            client.delete_object(Bucket=bucket, Key=versions[0]["Key"], VersionId=versions[0]["VersionId"])
        assert await read_all(store, "rec/5/000001.mp4") == b"evidence"
        await store.set_legal_hold("rec/5/000001.mp4", False)
        await store.delete("rec/5/000001.mp4")
        with pytest.raises(NotFound):
            await store.size("rec/5/000001.mp4")
        assert "Versions" not in client.list_object_versions(Bucket=bucket)
    finally:
        await store.aclose()


async def test_a_hold_asked_for_while_the_object_waits_in_the_spool_reaches_the_store(moto, tmp_path):
    bucket = new_bucket(moto, lock=True)
    store = make_store(moto, bucket, tmp_path)
    try:
        await store.check()
        moto.pause()
        try:
            w = await store.open_writer("rec/6/000001.mp4")
            await w.write(b"held while the store was away")
            await w.close()
            await store.set_legal_hold("rec/6/000001.mp4", True)
            assert await store.legal_hold("rec/6/000001.mp4") is True
            with pytest.raises(StorageError, match="legal hold"):
                await store.delete("rec/6/000001.mp4")
        finally:
            moto.resume()
        await until(lambda: store.pending().objects == 0, timeout=20)
        answer = s3(moto).get_object_legal_hold(Bucket=bucket, Key="site-a/rec/6/000001.mp4")
        assert answer["LegalHold"]["Status"] == "ON"
    finally:
        await store.aclose()


async def test_a_bucket_without_object_lock_says_so(store, caplog):
    with caplog.at_level(logging.INFO, logger="valt.storage.s3"):
        await store.check()
    assert store.object_lock is False
    assert "has no Object Lock" in caplog.text
    w = await store.open_writer("a.mp4")
    await w.write(b"x")
    await w.close()
    assert await store.set_legal_hold("a.mp4", True) is False  # the store cannot hold it: nothing done
    assert await store.legal_hold("a.mp4") is False


async def test_a_presigned_url_reads_the_object(store):
    data = os.urandom(50_000)
    w = await store.open_writer("clips/7.mp4")
    await w.write(data)
    await w.close()
    url = await store.presigned_url("clips/7.mp4", 300)
    async with httpx.AsyncClient() as http:
        whole = await http.get(url)
        part = await http.get(url, headers={"Range": "bytes=10-19"})
    assert whole.status_code == 200 and whole.content == data
    assert part.status_code == 206 and part.content == data[10:20]


# --- settings and credentials ----------------------------------------------------------------

def test_config_refuses_unknown_keys_and_needs_a_credentials_file(tmp_path):
    with pytest.raises(ValueError, match="extra"):
        S3StorageConfig(bucket="b-1", spool_dir=tmp_path, secret_key="x")
    with pytest.raises(ValueError, match="credentials_file"):
        S3StorageConfig(bucket="b-1", spool_dir=tmp_path, credentials="file")
    with pytest.raises(ValueError, match="part_size_mb"):
        S3StorageConfig(bucket="b-1", spool_dir=tmp_path, part_size_mb=4)
    assert S3StorageConfig(bucket="b-1", spool_dir=tmp_path, prefix="/site/a/").prefix == "site/a/"
    for name, field in S3StorageConfig.model_fields.items():
        assert field.description, name


async def test_credentials_from_a_file_work_and_missing_ones_are_named_not_shown(moto, bucket, tmp_path,
                                                                                 monkeypatch):
    creds = tmp_path / "credentials"
    creds.write_text(f"[valt]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = make_store(moto, bucket, tmp_path, credentials="file", credentials_file=creds, profile="valt")
    try:
        await store.check()
    finally:
        await store.aclose()
    for store, why in ((make_store(moto, bucket, tmp_path), "AWS_SECRET_ACCESS_KEY is not set"),
                       (make_store(moto, bucket, tmp_path, credentials="file", credentials_file=creds,
                                   profile="other"), r"no profile \[other\]")):
        try:
            with pytest.raises(StorageError, match=why) as err:
                await store.check()
        finally:
            await store.aclose()
    assert SECRET_KEY not in str(err.value)


@pytest.fixture(scope="module")
def moto_with_iam(tmp_path_factory):
    # moto checks signatures and keys after the first N requests: the test's own user, its
    # policy, its key and a bucket are made unchecked, everything after is checked.
    server = MotoS3(tmp_path_factory.mktemp("moto-iam"), env={"INITIAL_NO_AUTH_ACTION_COUNT": "4"})
    iam = boto3.client("iam", endpoint_url=server.url, region_name="us-east-1",
                       aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    iam.create_user(UserName="valt")
    iam.put_user_policy(UserName="valt", PolicyName="all", PolicyDocument=(
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}'))
    key = iam.create_access_key(UserName="valt")["AccessKey"]
    boto3.client("s3", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                 aws_secret_access_key=key["SecretAccessKey"]).create_bucket(Bucket="valt-iam")
    yield server, key["AccessKeyId"], key["SecretAccessKey"]
    server.stop()


async def test_a_wrong_secret_key_is_named_in_the_error_but_never_shown(moto_with_iam, tmp_path, monkeypatch,
                                                                        caplog):
    server, key_id, secret = moto_with_iam
    wrong = "wrong-secret-" + secret[13:]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    store = make_store(server, "valt-iam", tmp_path)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(StorageError, match="SignatureDoesNotMatch") as err:
            await store.check()
        await store.aclose()
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
        unknown = make_store(server, "valt-iam", tmp_path)
        with pytest.raises(StorageError, match="InvalidAccessKeyId") as err2:
            await unknown.check()
        await unknown.aclose()
    for text in (str(err.value), str(err2.value), caplog.text, repr(store.config)):
        assert wrong not in text and secret not in text
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    good = make_store(server, "valt-iam", tmp_path)
    try:
        await good.check()
    finally:
        await good.aclose()


def test_the_plugin_is_registered_in_valt_storage():
    from importlib.metadata import entry_points

    assert "valt_storage_s3.plugin" in {ep.value for ep in entry_points(group="valt.storage") if ep.name == "s3"}


async def test_a_store_restarted_without_its_multipart_uploads_gets_the_object_again(tmp_path):
    # moto comes back empty after stop/start: the upload begun before is unknown to it.
    server = MotoS3(tmp_path / "moto-restart")
    try:
        bucket = new_bucket(server)
        store = make_store(server, bucket, tmp_path)
        data = os.urandom(11 * MiB)
        w = await store.open_writer("rec/4/000001.mp4")
        await w.write(data[:6 * MiB])
        await w.flush()
        await until(lambda: len(s3(server).list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1)
        server.stop()
        await w.write(data[6 * MiB:])
        await w.flush()
        await w.close()
        assert await read_all(store, "rec/4/000001.mp4") == data
        server.start()
        s3(server).create_bucket(Bucket=bucket)
        await until(lambda: store.pending().objects == 0, timeout=20)
        assert s3(server).get_object(Bucket=bucket, Key="site-a/rec/4/000001.mp4")["Body"].read() == data
        await store.aclose()
    finally:
        server.stop()


def test_every_setting_is_in_the_plugin_page():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[4] / "docs" / "storage-s3.md").read_text()
    for name in S3StorageConfig.model_fields:
        assert f"| `{name}` |" in page, name


WRITER_CHILD = """
import asyncio, os, sys
from valt_storage_s3.backend import S3Storage
from valt_storage_s3.config import S3StorageConfig

async def main():
    store = S3Storage(S3StorageConfig(bucket=sys.argv[1], endpoint_url=sys.argv[2], spool_dir=sys.argv[3],
                                      credentials="environment", part_size_mb=5))
    w = await store.open_writer("rec/8/000001.mp4")
    for i in range(7):
        await w.write(bytes([i]) * MiB)
        await w.flush()
    await w.write(b"never flushed")
    print("flushed", flush=True)
    await asyncio.sleep(60)

MiB = 1024 * 1024
asyncio.run(main())
"""


async def test_a_sigkilled_writer_keeps_its_flushed_bytes_for_salvage(moto, bucket, tmp_path):
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", WRITER_CHILD, bucket, moto.url, str(tmp_path / "spool")],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "flushed"
    finally:
        child.kill()
        child.wait()
    store = make_store(moto, bucket, tmp_path, prefix="")
    try:
        assert await store.unfinished("rec") == ["rec/8/000001.mp4"]
        size = await store.salvage("rec/8/000001.mp4")
        flushed = b"".join(bytes([i]) * MiB for i in range(7))
        # What was written but not flushed may or may not have reached the file; flushed bytes always did.
        data = await read_all(store, "rec/8/000001.mp4")
        assert size == len(data) and data[:len(flushed)] == flushed
        await until(lambda: store.pending().objects == 0)
        assert s3(moto).list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        assert s3(moto).head_object(Bucket=bucket, Key="rec/8/000001.mp4")["ContentLength"] == size
    finally:
        await store.aclose()
