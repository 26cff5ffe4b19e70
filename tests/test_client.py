"""The client (speechret.client.RemoteLibrary) against a real keyless server: 20 clips are hashed,
encrypted, sealed and uploaded by the client, searched by audio through the service, fetched and
decrypted -- with the same answers as the local library -- and afterwards the server's library
directory, its log, its command line and environment (and, where /proc allows it, its memory)
hold no key bytes (the raw key, the library secret and every key derived from it, raw / hex /
base64) and no plaintext metadata (source paths, texts, speakers, the owner's ids).

The model is a random-weight checkpoint (test_export.random_checkpoint): the property is "the
same computation on either side of the wire", which needs a deterministic model, not a trained one.
"""

from __future__ import annotations

import base64
import os

import numpy as np
import pytest
import soundfile as sf

from speechret import Library
from speechret.audio import load_audio, to_pcm16
from speechret.client import RemoteLibrary, ServiceError
from speechret.crypto import build_cipher, generate_key_file, load_key_file
from speechret.hashing.keyed import hkdf
from speechret.library import LibraryError
from speechret.library.sealing import library_secret
from speechret.service.auth import new_token_file
from speechret.service.launch import ServerProcess

from test_export import SR, clip, random_checkpoint

pytestmark = pytest.mark.usefixtures("one_faiss_thread")

N = 20


def _secrets(key: bytes) -> dict[str, bytes]:
    """The raw key and every key the library derives from it (speechret.library.sealing)."""
    secret = library_secret(build_cipher("aes_gcm", key))
    return {"raw key": key, "library secret": secret, "id key": hkdf(secret, b"speechret item id v1"),
            "metadata key": hkdf(secret, b"speechret item metadata v1"),
            "code key": hkdf(secret, b"speechret keyed codes v1")}


def _forms(value: bytes) -> list[bytes]:
    return [value, value.hex().encode(), value.hex().upper().encode(), base64.b64encode(value),
            base64.urlsafe_b64encode(value).rstrip(b"=")]


def _scan_files(root, needles: dict[str, bytes]) -> list[str]:
    found = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            found += [f"{name} in {p}" for name, n in needles.items() if n in data]
    return found


def _scan_memory(pid: int, needles: dict[str, bytes]) -> list[str] | None:
    """Needles found in the readable memory of process ``pid`` (None: /proc/<pid>/mem unreadable)."""
    found = set()
    try:
        maps = open(f"/proc/{pid}/maps").read().splitlines()
        mem = open(f"/proc/{pid}/mem", "rb", 0)
    except OSError:
        return None
    longest = max(len(n) for n in needles.values())
    with mem:
        for line in maps:
            addr, perms = line.split()[:2]
            if not perms.startswith("r"):
                continue
            a, b = (int(x, 16) for x in addr.split("-"))
            tail = b""
            for start in range(a, b, 1 << 24):
                try:
                    mem.seek(start)
                    chunk = mem.read(min(1 << 24, b - start))
                except (OSError, ValueError, OverflowError):
                    break
                data = tail + chunk
                found |= {name for name, n in needles.items() if n in data}
                tail = data[-longest:]
    return sorted(found)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("client")
    ckpt = random_checkpoint("speechret_hash", d, "model.net.channels=[8,16,32,32]")
    files, meta = [], []
    for i in range(N):
        p = d / "owner-audio" / f"confidential-{i:02d}.wav"
        p.parent.mkdir(exist_ok=True)
        sf.write(str(p), clip(int(SR * (0.5 + 0.07 * i)), 300 + i), SR, subtype="PCM_16")
        files.append(str(p))
        meta.append({"id": f"owner-item-{i:02d}-Xq", "speaker": f"speaker-Zeta{i % 4}",
                     "label": i % 3, "text": f"the private words number {i} qv"})
    key = generate_key_file(d / "owner.key")
    lib_dir = RemoteLibrary.create_library(d / "served", checkpoint=ckpt, key=key, keyed_codes=True)
    r, w = new_token_file(d / "tokens" / "read"), new_token_file(d / "tokens" / "write")
    return {"d": d, "ckpt": ckpt, "files": files, "meta": meta, "key": key, "lib": lib_dir, "read": r, "write": w}


def test_index_search_decrypt_through_the_service_and_the_server_learns_no_secret(world):
    d = world["d"]
    log = d / "server.log"
    key = load_key_file(world["key"])
    with ServerProcess(world["lib"], world["read"], world["write"], log) as srv:
        write_token = world["write"].read_text().strip()
        read_token = world["read"].read_text().strip()
        with RemoteLibrary(srv.url, write_token, key=world["key"], checkpoint=world["ckpt"]) as remote:
            rep = remote.add(list(zip(world["files"], world["meta"])))
            assert rep.added == N and not rep.failed
            assert remote.add(list(zip(world["files"], world["meta"]))).skipped_existing == N  # resumable
        with RemoteLibrary(srv.url, read_token, key=world["key"], checkpoint=world["ckpt"]) as user:
            got = user.search(world["files"], k=N)
            for i, res in enumerate(got):  # a random model may give two clips one code: ties at 0
                own = [h for h in res.hits if h.item_id == world["meta"][i]["id"]]
                assert own and own[0].distance == 0.0 and res.hits[0].distance == 0.0
                assert own[0].metadata["speaker"] == world["meta"][i]["speaker"]
                assert own[0].metadata["source"] == world["files"][i]
            item = user.decrypt(world["meta"][4]["id"])
            want = to_pcm16(load_audio(world["files"][4], SR))
            assert np.array_equal(item.pcm, want) and item.metadata["text"] == world["meta"][4]["text"]
            with pytest.raises(Exception, match="key"):
                RemoteLibrary(srv.url, read_token, key=bytes(32))  # wrong key: refused before anything is sent
            with pytest.raises(ServiceError) as err:
                user.remove([world["meta"][0]["id"]])  # the read token cannot delete
            assert err.value.status == 403
            # the local library (same directory, opened with the key) gives the same answers
            with Library.open(world["lib"], key=world["key"], checkpoint=world["ckpt"]) as local:
                for mode in ({"k": 5}, {"mode": "threshold", "threshold": 0.3}):
                    a = [[(h.item_id, h.rank, h.distance) for h in r] for r in user.search(world["files"], **mode)]
                    b = [[(h.item_id, h.rank, h.distance) for h in r] for r in local.search(world["files"], **mode)]
                    assert a == b, mode
        with RemoteLibrary(srv.url, read_token) as keyless:  # keyed codes: no key, no query
            with pytest.raises(LibraryError, match="keyed codes needs the library's key"):
                keyless.search(codes=np.zeros((1, 128), bool), k=2)
        needles = {f"{name} ({i})": form for name, value in _secrets(key).items()
                   for i, form in enumerate(_forms(value))}
        memory = _scan_memory(srv.pid, needles)
        proc = [(open(f"/proc/{srv.pid}/{f}", "rb").read()) for f in ("cmdline", "environ")
                if os.path.exists(f"/proc/{srv.pid}/{f}")]
    assert memory == [] or (memory is None and os.geteuid() != 0), memory  # None: /proc/<pid>/mem unreadable
    plain = {f"path {i}": f.encode() for i, f in enumerate(world["files"])}
    plain |= {f"{k} {i}": str(m[k]).encode() for i, m in enumerate(world["meta"]) for k in ("id", "speaker", "text")}
    plain["audio folder"] = str(d / "owner-audio").encode()
    served = _scan_files(world["lib"], needles | plain)
    assert served == [], served
    log_text = log.read_bytes()
    assert not [n for n, v in (needles | plain).items() if v in log_text]
    assert not [n for n, v in needles.items() for blob in proc if v in blob]
    # the scans do find what is there: the key file holds the raw key, the owner's folder the paths
    assert _scan_files(world["key"].parent, {"raw": key})
