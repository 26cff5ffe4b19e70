"""The keyless search service against a real server (uvicorn in a child process on 127.0.0.1,
started and stopped by the test, :class:`speechret.service.launch.ServerProcess`).

* auth: every route but /health refuses no token and a wrong token (401) and the read token on
  a write route (403), and nothing is stored;
* limits and bad input: an oversized body, too many items or queries (413), malformed JSON, a
  code of the wrong width, padding bits set, a 27-bit group overflow, bad base64 (422) -- each
  with nothing stored, even when the other items of the batch are good;
* searches through the service equal the library's own search (every mode of papers A/B/C and
  keyed codes), and what was added authenticates with the key (``fsck deep``);
* a server SIGKILLed in the middle of writing a batch restarts with nothing committed lost,
  nothing duplicated, fsck clean, and the re-upload adds exactly what was missing.

Items are random PCM with random codes sealed by the key holder's half of the library
(:class:`speechret.library.remote.ItemSealer`): the service sees exactly what a client sends.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from speechret.client import ServiceClient, ServiceError
from speechret.crypto import build_cipher
from speechret.library import SpeechLibrary
from speechret.library.query import search_codes
from speechret.library.remote import ItemSealer
from speechret.service.auth import new_token_file
from speechret.service.launch import ServerProcess

from test_library import CODES, _items, _manifest

KEY = bytes(range(32))


def _cipher():
    return build_cipher("aes_gcm", KEY)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    d = tmp_path_factory.mktemp("tokens")
    r, w = new_token_file(d / "read.token"), new_token_file(d / "write.token")
    return {"read_file": r, "write_file": w, "read": r.read_text().strip(), "write": w.read_text().strip()}


def _server(lib_dir, tokens, tmp_path, *overrides, name="server.log"):
    return ServerProcess(lib_dir, tokens["read_file"], tokens["write_file"], tmp_path / name, overrides=overrides)


def _new_library(tmp_path, method="paper_b", **extra):
    lib = SpeechLibrary.create(tmp_path / f"lib-{method}", _manifest(method, **extra), _cipher())
    man = dict(lib.manifest)
    lib.close()
    return tmp_path / f"lib-{method}", ItemSealer(_cipher(), man)


def _doc(s) -> dict:
    return {"item_id": s.item_id, "blob": base64.b64encode(s.blob).decode(), "blob_sha256": s.blob_sha256,
            "code": base64.b64encode(s.code).decode(), "meta": base64.b64encode(s.meta).decode(),
            "duration": s.duration, "sample_rate": s.sample_rate}


def _count(lib_dir) -> int:
    with SpeechLibrary.open(lib_dir) as lib:
        return len(lib)


# ------------------------------------------------------------------------------ auth + limits
def test_auth_and_limits_refuse_and_store_nothing(tmp_path, tokens):
    lib_dir, sealer = _new_library(tmp_path)
    good = sealer.seal(_items(0, 3, 1), CODES["paper_b"](3, 1))
    body = {"items": [_doc(s) for s in good]}
    search = {"codes": [base64.b64encode(s.code).decode() for s in good], "mode": "topk", "k": 2}
    oid = good[0].item_id
    routes = [("GET", "/v1/manifest", None), ("GET", "/v1/stats", None), ("GET", "/v1/fsck", None),
              ("GET", "/openapi.json", None), ("POST", "/v1/search", search),
              ("POST", "/v1/items/lookup", {"item_ids": [oid]}), ("GET", f"/v1/items/{oid}/blob", None),
              ("POST", "/v1/items", body), ("DELETE", f"/v1/items/{oid}", None), ("GET", "/v1/nosuch", None)]
    writes = {("POST", "/v1/items"), ("DELETE", f"/v1/items/{oid}")}
    with _server(lib_dir, tokens, tmp_path, "limits.max_body_bytes=300000", "limits.max_items=4",
                 "limits.max_queries=3") as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        assert http.get("/health").json() == {"status": "ok"}
        refused = 0
        bad_headers = [{}, {"Authorization": "Bearer " + "x" * 43}, {"Authorization": f"Basic {tokens['read']}"},
                       {"Authorization": f"Bearer {tokens['read']}x"}, {"Authorization": "Bearer"}]
        for method, path, js in routes:
            for h in bad_headers:
                r = http.request(method, path, json=js, headers=h)
                assert r.status_code == 401, (method, path, h, r.status_code)
                assert r.headers["www-authenticate"] == "Bearer"
                refused += 1
            if (method, path) in writes:
                r = http.request(method, path, json=js, headers={"Authorization": f"Bearer {tokens['read']}"})
                assert r.status_code == 403, (method, path)
                refused += 1
        assert refused == len(routes) * len(bad_headers) + len(writes)
        assert _count(lib_dir) == 0

        w = {"Authorization": f"Bearer {tokens['write']}"}
        # oversized: declared, and streamed without a length
        js = {**w, "content-type": "application/json"}
        r = http.post("/v1/items", content=b"{" + b" " * 400000 + b"}", headers=js)
        assert r.status_code == 413
        r = http.post("/v1/items", content=iter([b'{"items": [', b" " * 200000, b" " * 200000, b"]}"]),
                      headers={**w, "content-type": "application/json"})
        assert r.status_code == 413
        many = sealer.seal(_items(10, 5, 2), CODES["paper_b"](5, 2))
        r = http.post("/v1/items", json={"items": [_doc(s) for s in many]}, headers=w)
        assert r.status_code == 413 and "limit of 4" in r.json()["detail"]
        r = http.post("/v1/search", json={**search, "codes": search["codes"] * 2}, headers=w)
        assert r.status_code == 413
        # malformed
        for content in (b"{not json", b'{"items": 3}', b'{"items": [{"item_id": "x"}]}', b"[]"):
            r = http.post("/v1/items", content=content, headers={**w, "content-type": "application/json"})
            assert r.status_code == 422, content
        # bad codes in an otherwise good batch: 422 naming the item and field, nothing stored
        bad_width = dict(_doc(good[1]), code=base64.b64encode(good[1].code + b"\0").decode())
        bad_b64 = dict(_doc(good[2]), blob="***")
        bad_sum = dict(_doc(good[2]), blob_sha256="0" * 64)
        for bad, field in ((bad_width, "items[1].code"), (bad_b64, "items[1].blob"), (bad_sum, "items[1].blob")):
            r = http.post("/v1/items", json={"items": [_doc(good[0]), bad]}, headers=w)
            assert r.status_code == 422 and r.json()["detail"].startswith(field), r.json()
        r = http.post("/v1/search", json={**search, "codes": [base64.b64encode(b"\1\2").decode()]}, headers=w)
        assert r.status_code == 422 and "codes[0]" in r.json()["detail"]
        r = http.post("/v1/search", json={**search, "mode": "keyword"}, headers=w)
        assert r.status_code == 422 and "mode" in r.json()["detail"]
        r = http.post("/v1/search", json={**search, "k": 0}, headers=w)
        assert r.status_code == 422 and r.json()["detail"].startswith("k:")
        assert _count(lib_dir) == 0 and http.get("/v1/fsck", headers=w).json()["ok"]
        # the good batch goes in once; the same upload again adds nothing
        r = http.post("/v1/items", json=body, headers=w)
        assert r.status_code == 200 and r.json()["added"] == [s.item_id for s in good]
        again = http.post("/v1/items", json=body, headers=w).json()
        assert again == {"added": [], "skipped": [s.item_id for s in good]}
        schema = http.get("/openapi.json", headers={"Authorization": f"Bearer {tokens['read']}"}).json()
        assert {"/v1/items", "/v1/search", "/v1/items/{item_id}/blob", "/v1/stats"} <= set(schema["paths"])
        assert "HTTPBearer" in json.dumps(schema["components"]["securitySchemes"])
    log = (tmp_path / "server.log").read_text()
    assert tokens["read"] not in log and tokens["write"] not in log


def test_padding_bits_and_group_overflow_are_refused(tmp_path, tokens):
    """Paper A with 44-bit codes (4 padding bits) and paper C (27-bit groups) on one server each."""
    lib_a, sealer_a = _new_library(tmp_path, "paper_a", code_bits=44)
    lib_c, sealer_c = _new_library(tmp_path, "paper_c")
    a = sealer_a.seal(_items(0, 2, 1), np.random.default_rng(0).random((2, 44)) < 0.5)
    c = sealer_c.seal(_items(0, 2, 1), CODES["paper_c"](2, 1))
    padded = bytearray(a[1].code)
    padded[-1] |= 0x80
    words = np.frombuffer(c[1].code, "<u4").copy()
    words[0] |= 1 << 30
    cases = [(lib_a, a, padded, "padding bits"), (lib_c, c, words.tobytes(), "27 bits"),
             (lib_c, c, c[1].code + b"\0", "uint32 words")]
    for lib_dir, sealed, bad_code, message in cases:
        with _server(lib_dir, tokens, tmp_path, name=f"{lib_dir.name}.log") as srv:
            cl = ServiceClient(srv.url, tokens["write"])
            before = cl.stats()["items"]
            bad = type(sealed[1])(**{**sealed[1].__dict__, "code": bytes(bad_code)})
            with pytest.raises(ServiceError, match=message) as err:
                cl.add([sealed[0], bad])
            assert err.value.status == 422
            assert cl.stats()["items"] == before and cl.fsck()["ok"]
            assert len(cl.add(sealed)) == 2 - before
            cl.close()


# ------------------------------------------------------------------------------ searches
def _local(lib_dir, rows, **params):
    with SpeechLibrary.open(lib_dir) as lib:
        return [[(h["item_id"], h["rank"], h["ber"], h["span"]) for h in hits]
                for hits in search_codes(lib, lib.hashing.decode_rows(rows), prekeyed=True, **params)]


def _remote(cl, rows, **params):
    return [[(h["item_id"], h["rank"], h["distance"], None if h["span"] is None else tuple(h["span"]))
             for h in hits] for hits in cl.search(rows, **params)]


@pytest.mark.parametrize("method,extra,modes", [
    ("paper_a", {}, [{"mode": "topk", "k": 5}, {"mode": "threshold", "threshold": 0.45}]),
    ("paper_b", {"keyed_codes": True}, [{"mode": "topk", "k": 4}, {"mode": "two_stage", "k": 3},
                                        {"mode": "two_stage", "stage2": "threshold", "threshold": 0.5}]),
    ("paper_c", {}, [{"mode": "keyword", "gamma": 0.3, "k": 0}, {"mode": "full_speech", "gamma": 0.35, "k": 0},
                     {"mode": "full_speech", "gamma": 0.35, "k": 0, "direction": "symmetric"}]),
])
def test_search_through_the_service_equals_the_library(tmp_path, tokens, method, extra, modes):
    lib_dir, sealer = _new_library(tmp_path, method, **extra)
    codes = CODES[method](30, 3)
    sealed = sealer.seal(_items(0, 30, 3), codes)
    queries = [s.code for s in sealed[:6]]
    with _server(lib_dir, tokens, tmp_path) as srv:
        cl = ServiceClient(srv.url, tokens["write"])
        assert len(cl.add(sealed[:20])) == 20
        first = _remote(cl, queries, **modes[0])
        assert len(cl.add(sealed[20:])) == 10  # the readers pick up rows committed after they loaded
        for params in modes:
            got = _remote(cl, queries, **params)
            assert got == _local(lib_dir, queries, **params), params
            assert any(hits for hits in got)
        assert first != _remote(cl, queries, **modes[0]) or method == "paper_c"
        cl.delete(sealed[0].item_id)
        assert sealed[0].item_id not in {h[0] for hits in _remote(cl, queries, **modes[0]) for h in hits}
        assert cl.stats()["items"] == 29 and cl.fsck()["ok"]
        blob = cl.blob(sealed[1].item_id)
        assert blob == sealed[1].blob
        cl.close()
        # the keyless server never loads a model: after adds, every search mode, a delete and fsck it
        # has not mapped PyTorch (a lighter, faster-starting process; /proc: Linux)
        maps = Path(f"/proc/{srv.pid}/maps")
        if maps.exists():
            assert "libtorch" not in maps.read_text()
    with SpeechLibrary.open(lib_dir, _cipher()) as lib:  # the key holder authenticates every item
        report = lib.fsck(deep=True)
        assert report["ok"], report
        assert lib.item("utt-0005")["speaker"] == "spk2"
        assert np.array_equal(lib.decrypt("utt-0007"), _items(0, 30, 3)[7]["pcm"])


# ------------------------------------------------------------------------------ crash
def test_sigkill_mid_write_loses_and_duplicates_nothing(tmp_path, tokens):
    lib_dir, sealer = _new_library(tmp_path, "paper_a")
    rng = np.random.default_rng(5)
    items = _items(0, 140, 5)
    for it in items:  # ~64 KB blobs: the big batch takes a while to write (one fsync per blob)
        it["pcm"] = rng.integers(-32768, 32767, 32000, dtype=np.int16)
    sealed = sealer.seal(items, CODES["paper_a"](140, 5))
    first, second = sealed[:20], sealed[20:]
    srv = _server(lib_dir, tokens, tmp_path, "limits.max_items=200").start()
    try:
        cl = ServiceClient(srv.url, tokens["write"], timeout=60)
        assert len(cl.add(first)) == 20
        outcome: dict = {}

        def upload() -> None:
            try:
                outcome["added"] = cl.add(second)
            except (httpx.HTTPError, ServiceError) as exc:
                outcome["error"] = exc

        t = threading.Thread(target=upload)
        t.start()
        blobs = lib_dir / "blobs"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(1 for p in blobs.rglob("*.bin")) < 20 + 10:
            time.sleep(0.005)
        srv.kill()  # SIGKILL while the batch's blobs are being written
        t.join(60)
        assert "error" in outcome, "the upload finished before the kill: make the batch bigger"
        cl.close()
        with SpeechLibrary.open(lib_dir) as lib:
            n = len(lib)
            ids = [it["item_id"] for it in lib.items()]
        assert n in (20, 140) and len(set(ids)) == n  # one transaction: all or nothing
        assert {s.item_id for s in first} <= set(ids)
        srv = _server(lib_dir, tokens, tmp_path, "limits.max_items=200", name="restart.log").start()
        cl = ServiceClient(srv.url, tokens["write"], timeout=60)
        assert cl.fsck()["ok"]  # orphans of the lost batch were removed at start-up
        added = cl.add(sealed)  # re-upload everything: exactly the missing items go in
        assert len(added) == 140 - n and set(added) == {s.item_id for s in sealed} - set(ids)
        assert cl.stats()["items"] == 140
        hits = cl.search([s.code for s in sealed[::7]], mode="topk", k=1)
        assert [h[0]["item_id"] for h in hits] == [s.item_id for s in sealed[::7]]
        cl.close()
    finally:
        srv.stop()
    with SpeechLibrary.open(lib_dir, _cipher()) as lib:
        report = lib.fsck(deep=True)
        assert report["ok"] and report["items"] == 140, report
        rows = lib._conn.execute("SELECT COUNT(*), COUNT(DISTINCT item_id) FROM items").fetchone()
        assert rows == (140, 140)
        assert np.array_equal(lib.decrypt(items[100]["item_id"]), items[100]["pcm"])


# ------------------------------------------------------------------------------ launcher / tokens
def test_launcher_refuses_tokens_on_the_command_line_and_weak_tokens(tmp_path, capsys):
    import os
    import stat

    from speechret.errors import ConfigError
    from speechret.service import main
    from speechret.service.auth import Tokens

    secret = "s3cret-token-value-0123456789abcdef"
    for argv in (["library=x", f"tokens.read={secret}"], ["library=x", f"+read_token={secret}"],
                 ["library=x", f"tokens.write_file={tmp_path}/w", f"+tokens.token={secret}"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "never accepted on the command line" in err and secret not in err
    assert main(["port=1"]) == 2 and "library" in capsys.readouterr().err
    assert main([f"library={tmp_path}/none", f"tokens.read_file={tmp_path}/r"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["new-token", str(tmp_path / "t")]) == 0
    assert stat.S_IMODE(os.stat(tmp_path / "t").st_mode) == 0o600 and len((tmp_path / "t").read_text().strip()) >= 43
    assert main(["new-token", str(tmp_path / "t")]) == 2  # never overwritten
    (tmp_path / "loose").write_text("x" * 43)
    os.chmod(tmp_path / "loose", 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        Tokens.from_sources(read_file=tmp_path / "loose", write_file=tmp_path / "t")
    with pytest.raises(ConfigError, match="too short"):
        Tokens("short", "w" * 43)
    with pytest.raises(ConfigError, match="must differ"):
        Tokens("r" * 43, "r" * 43)
    tokens = Tokens("r" * 43, "w" * 43)
    assert tokens.role("r" * 43) == "read" and tokens.role("w" * 43) == "write"
    assert tokens.role(None) is None and tokens.role("r" * 42) is None
    assert "r" * 10 not in repr(tokens) and "w" * 10 not in repr(tokens)


def test_serve_runs_faiss_on_the_configured_threads(tmp_path, tokens, monkeypatch):
    """``faiss_threads`` (conf/serve.yaml: 1) reaches FAISS before uvicorn starts serving: the
    service's concurrency is its reader threads, not OpenMP teams inside each search."""
    import faiss
    import uvicorn

    from speechret.service import _compose, serve

    assert _compose(["library=x"]).faiss_threads == 1
    lib_dir, _ = _new_library(tmp_path, "paper_a")
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(threads=faiss.omp_get_max_threads()))
    before = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(2)
        serve(lib_dir, tokens={"read_file": str(tokens["read_file"]), "write_file": str(tokens["write_file"])},
              faiss_threads=1, access_log=False)
        assert seen["threads"] == 1
    finally:
        faiss.omp_set_num_threads(before)
