"""The lean S3 reader against a real SeaweedFS: every reject reason, signed and unsigned access, boto3's endpoint
settings, 503 throttling and dropped connections through the fault proxy, a server restart mid-run, and a 1 GiB
gzip bomb rejected with bounded memory."""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections import Counter

import pytest

from stackv2.swh.config import FetchConfig
from stackv2.swh.s3fetch import FetchFailed, Progress, RetryBudget, S3Reader, fetch, resolve_endpoint
from stackv2.text.decode import FETCH_ERROR, TOO_LARGE
from tests.faultproxy import FaultProxy
from tests.s3server import ACCESS_KEY, SECRET_KEY, fault_corpus, gzip_bomb, put_objects, upload_corpus

pytestmark = pytest.mark.s3
BUCKET = "swh-fetch-tests"


@pytest.fixture(scope="module")
def corpus(s3server):
    blobs = fault_corpus(bomb=False)
    upload_corpus(s3server, BUCKET, blobs)
    return blobs


def _cfg(endpoint: str, **kw) -> FetchConfig:
    return FetchConfig(
        endpoint_url=endpoint,
        unsigned=kw.pop("unsigned", True),
        concurrency=kw.pop("concurrency", 8),
        **kw,
    )


def _requests(blobs):
    return [(b.blob_id, b.content_id, b.src_encoding) for b in blobs]


def _check_outcomes(blobs, outcomes) -> None:
    assert len(outcomes) == len(blobs)
    for b, o in zip(blobs, outcomes, strict=True):
        assert o.reason == b.reason, (b.blob_id, o)
        if b.reason is None:
            assert o.content == b.text
            assert o.src_encoding == b.src_encoding
            assert o.length_bytes == len(b.text.encode())


def test_every_reason_unsigned(s3server, corpus):
    reader = S3Reader(_cfg(s3server.endpoint_url), BUCKET)
    progress = Progress(every=0)
    lines = []
    progress.out = lines.append
    outcomes = list(fetch(reader, _requests(corpus), progress=progress))
    _check_outcomes(corpus, outcomes)
    expected = Counter(b.reason for b in corpus if b.reason)
    assert progress.reasons == expected
    assert progress.files == len(corpus)
    assert "objects/s" in lines[-1] and "missing_object=1" in lines[-1]
    assert reader.retries == 0


def test_signed_requests(s3server, corpus, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    reader = S3Reader(_cfg(s3server.endpoint_url, unsigned=False), BUCKET)
    _check_outcomes(corpus, list(fetch(reader, _requests(corpus))))

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-for-this-test")
    reader = S3Reader(_cfg(s3server.endpoint_url, unsigned=False, max_attempts=2), BUCKET)
    out = list(fetch(reader, _requests(corpus[:3])))
    assert [o.reason for o in out] == [FETCH_ERROR] * 3
    assert "403" in out[0].detail
    assert "wrong-secret" not in out[0].detail and ACCESS_KEY not in out[0].detail


def test_no_credentials_is_a_clear_error(s3server, monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(FetchFailed, match="no-sign-request"):
        S3Reader(_cfg(s3server.endpoint_url, unsigned=False), BUCKET)


def test_endpoint_and_region_from_boto3_settings(s3server, corpus, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3server.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    cfg = FetchConfig(unsigned=True, concurrency=4)
    ep, _ = resolve_endpoint(cfg, BUCKET)
    assert (ep.url, ep.base_path, ep.region) == (s3server.endpoint_url, f"/{BUCKET}/", "eu-west-3")
    _check_outcomes(corpus[:5], list(fetch(S3Reader(cfg, BUCKET), _requests(corpus[:5]))))


@pytest.mark.parametrize("region", [None, "eu-west-3"])
def test_aws_endpoint_is_the_global_virtual_host(monkeypatch, region):
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    if region:
        monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    ep, creds = resolve_endpoint(FetchConfig(unsigned=True), "softwareheritage")
    assert creds is None
    assert ep.url == "https://softwareheritage.s3.amazonaws.com"
    assert (ep.port, ep.base_path, ep.region) == (443, "/", region or "us-east-1")


def test_throttling_and_dropped_connections_are_retried(s3server, corpus):
    proxy = FaultProxy("127.0.0.1", s3server.s3_port, fail_rate=0.3, drop_rate=0.1, seed=7).start()
    try:
        reader = S3Reader(_cfg(proxy.endpoint_url, backoff_base=0.01, backoff_max=0.2, max_attempts=30), BUCKET)
        outcomes = list(fetch(reader, _requests(corpus)))
    finally:
        proxy.stop()
    _check_outcomes(corpus, outcomes)
    assert proxy.injected_503 > 5 and proxy.injected_drops > 0
    assert reader.retries >= proxy.injected_503 + proxy.injected_drops - 1


def test_retry_budget_bounds_a_storm(s3server, corpus):
    proxy = FaultProxy("127.0.0.1", s3server.s3_port, fail_rate=1.0).start()
    try:
        cfg = _cfg(
            proxy.endpoint_url,
            backoff_base=0.001,
            backoff_max=0.002,
            max_attempts=50,
            retry_budget_min=10,
            retry_budget_ratio=0.0,
        )
        reader = S3Reader(cfg, BUCKET)
        outcomes = list(fetch(reader, _requests(corpus)))
    finally:
        proxy.stop()
    assert {o.reason for o in outcomes} == {FETCH_ERROR}
    assert reader.retries == 10
    assert proxy.requests == len(corpus) + 10
    assert any("budget" in o.detail for o in outcomes) and "503 SlowDown" in outcomes[0].detail


def test_retry_budget_grows_with_requests():
    b = RetryBudget(minimum=1, ratio=0.5)
    assert b.try_spend() and not b.try_spend()
    b.request()
    b.request()
    assert b.try_spend() and not b.try_spend()


@pytest.mark.slow
def test_server_stopped_and_restarted_mid_run(s3server, corpus):
    """The server goes away mid-run for a few seconds: every object still arrives, none is lost or doubled."""
    blobs = [b for b in corpus if b.reason is None] * 6
    proxy = FaultProxy("127.0.0.1", s3server.s3_port, latency=0.02).start()
    outcomes = []
    reader = S3Reader(
        _cfg(proxy.endpoint_url, concurrency=4, backoff_base=0.2, backoff_max=2.0, max_attempts=40), BUCKET
    )
    worker = threading.Thread(target=lambda: outcomes.extend(fetch(reader, _requests(blobs))))
    try:
        worker.start()
        time.sleep(0.5)
        s3server.stop()
        time.sleep(1.0)
        s3server.start()
        worker.join(120)
    finally:
        proxy.stop()
    assert not worker.is_alive()
    _check_outcomes(blobs, outcomes)
    assert reader.retries > 0


@pytest.mark.slow
def test_gzip_bomb_rejected_with_bounded_memory(s3server):
    bomb = gzip_bomb()
    assert len(bomb) < 2_000_000
    put_objects(s3server, BUCKET, {"content/" + "b" * 40: bomb})
    reader = S3Reader(_cfg(s3server.endpoint_url), BUCKET)
    tracemalloc.start()
    try:
        (outcome,) = list(fetch(reader, [("b" * 40, None, None)]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.reason == TOO_LARGE
    assert peak < 4 * reader.cfg.max_length, f"peak {peak / 1e6:.0f} MB while inflating a 1 GiB bomb"


def test_oversized_object_refused_before_reading(s3server):
    put_objects(s3server, BUCKET, {"content/" + "c" * 40: bytes(300_000)})
    reader = S3Reader(_cfg(s3server.endpoint_url, max_compressed=100_000), BUCKET)
    (outcome,) = list(fetch(reader, [("c" * 40, None, None)]))
    assert outcome.reason == TOO_LARGE and "compressed" in outcome.detail


def _self_signed(tmp_path):
    """A certificate for localhost (its own CA) and its key, as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem, key_pem = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_pem, key_pem


def test_https_endpoint(s3server, corpus, tmp_path, monkeypatch):
    """TLS in front of SeaweedFS (a certificate the reader trusts through ``SSL_CERT_FILE``): non-blocking
    handshakes, reads of TLS records, signed requests; the same outcomes as over plain HTTP."""
    import asyncio
    import ssl

    cert, key = _self_signed(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    loop = asyncio.new_event_loop()

    async def pipe(src, dst):
        try:
            while data := await src.read(1 << 16):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()

    async def client(reader, writer):
        up_r, up_w = await asyncio.open_connection("127.0.0.1", s3server.s3_port)
        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    server = loop.run_until_complete(asyncio.start_server(client, "localhost", 0, ssl=ctx))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        reader = S3Reader(_cfg(f"https://localhost:{port}", unsigned=False, concurrency=4), BUCKET)
        _check_outcomes(corpus, list(fetch(reader, _requests(corpus))))
        _check_outcomes(corpus[:5], list(fetch(reader, _requests(corpus[:5]))))  # idle TLS connections reused
        reader.close()
        assert reader.retries == 0
        monkeypatch.delenv("SSL_CERT_FILE")  # the same server, its certificate no longer trusted: final, no retry
        reader = S3Reader(_cfg(f"https://localhost:{port}", unsigned=False, concurrency=4), BUCKET)
        (outcome,) = fetch(reader, _requests(corpus[:1]))
        assert outcome.reason == FETCH_ERROR and outcome.detail.startswith("TLS: ") and reader.retries == 0
    finally:

        async def shutdown():
            server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_slow_answers_time_out_and_are_retried(s3server, corpus):
    proxy = FaultProxy("127.0.0.1", s3server.s3_port, latency=2.0).start()
    try:
        reader = S3Reader(_cfg(proxy.endpoint_url, read_timeout=0.2, max_attempts=2, backoff_base=0.01), BUCKET)
        outcomes = list(fetch(reader, _requests(corpus[:4])))
    finally:
        proxy.stop()
    assert [o.detail for o in outcomes] == ["timeout after 2 attempts"] * 4
    assert reader.retries == 4


def test_fetch_one_and_idle_connections_kept(s3server, corpus):
    reader = S3Reader(_cfg(s3server.endpoint_url, concurrency=2), BUCKET)
    good = corpus[0]
    outcome, nbytes = reader.fetch_one(good.blob_id, good.content_id, good.src_encoding)
    assert outcome.content == good.text and nbytes == len(good.stored)
    assert len(reader._idle) == 1
    _check_outcomes(corpus, list(fetch(reader, _requests(corpus))))
    assert len(reader._idle) == 2
    reader.close()
    assert reader._idle == []
