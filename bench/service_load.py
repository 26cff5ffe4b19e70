"""Load benchmark of the keyless search service: N concurrent clients searching while one writer
adds, against a real server process on 127.0.0.1 (speechret.service.launch.ServerProcess).

    python bench/service_load.py [--items 100000] [--bits 384] [--clients 8] [--seconds 10]
                                 [--readers 2] [--k 10] [--writer-batch 8]

The library is synthetic: ``--items`` random ``--bits``-bit paper-A codes inserted as rows
straight into a new library's SQLite table (SpeechLibrary._insert_rows, the transaction every
add ends in; the rows name blob files that are never written: searching never reads blobs), then its FAISS
index is derived with SpeechLibrary.rebuild(). Building 100k real encrypted items would take
far longer and does not change what a search does. The writer adds real sealed items (random
PCM, AES-GCM, ItemSealer) through POST /v1/items while the readers search, so every search also
pays the index sync with SQLite. Each client is a thread with its own httpx connection sending
one query code per request (top-k); latency is measured per request on the client (HTTP
included). Prints a markdown table: p50 / p99 / mean latency, searches/s, items added/s, plus
the in-process latency of the same queries on the same index for comparison. ``--index``:
``faiss`` (BFlat, default), ``milvus-lite`` (embedded, 0/1 float vectors) or ``milvus``
(``--milvus-uri``, BINARY_VECTOR + BIN_FLAT).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speechret.client import ServiceClient  # noqa: E402
from speechret.crypto import build_cipher  # noqa: E402
from speechret.hashing.bits import pack_bits  # noqa: E402
from speechret.library import SpeechLibrary  # noqa: E402
from speechret.library.remote import ItemSealer  # noqa: E402
from speechret.service.auth import new_token_file  # noqa: E402
from speechret.service.launch import ServerProcess  # noqa: E402


def index_config(name: str, milvus_uri: str) -> dict:
    """``faiss``: BFlat; ``milvus-lite``: a milvus-lite file in the working directory, 0/1 float
    vectors (milvus-lite has no binary vectors); ``milvus``: a Milvus server, BINARY_VECTOR + BIN_FLAT."""
    if name == "faiss":
        return {"kind": "BFlat", "params": {}}
    if name == "milvus-lite":
        return {"kind": "milvus", "params": {"uri": "bench-milvus.db", "vector": "float01"}}
    return {"kind": "milvus", "params": {"uri": milvus_uri, "vector": "binary", "index_type": "BIN_FLAT"}}


def build_library(root: Path, n: int, bits: int, seed: int = 0, index: dict | None = None
                  ) -> tuple[Path, ItemSealer, np.ndarray]:
    cipher = build_cipher("aes_gcm", os.urandom(32))
    manifest = {"hash_method": "paper_a", "code_bits": bits, "model": {"name": "synthetic"}, "hash": {},
                "index": index or {"kind": "BFlat", "params": {}}}
    lib = SpeechLibrary.create(root / "lib", manifest, cipher)
    rng = np.random.default_rng(seed)
    codes = pack_bits(rng.random((n, bits)) < 0.5)
    step = 20000
    for s in range(0, n, step):
        rows = [{"item_id": f"{s + i:032x}", "duration": 1.0, "sample_rate": 16000, "category": None,
                 "n_groups": None, "blob_path": f"blobs/00/{s + i:032x}.bin", "checksum": "0" * 64,
                 "code": codes[s + i].tobytes(), "meta": os.urandom(40), "added_at": 0}
                for i in range(min(step, n - s))]
        lib._insert_rows(rows)
    lib.rebuild()
    sealer = ItemSealer(cipher, lib.manifest)
    lib.close()
    return root / "lib", sealer, codes


def percentile(x: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(x), q)) if x else float("nan")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--bits", type=int, default=384)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--readers", type=int, default=2)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--writer-batch", type=int, default=8)
    ap.add_argument("--index", choices=("faiss", "milvus-lite", "milvus"), default="faiss")
    ap.add_argument("--milvus-uri", default="http://127.0.0.1:19530")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="service_load-"))
    os.chdir(tmp)  # a milvus-lite file lives here (the server process runs here too)
    t0 = time.perf_counter()
    lib_dir, sealer, codes = build_library(tmp, args.items, args.bits, index=index_config(args.index, args.milvus_uri))
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    queries = codes[rng.integers(0, len(codes), 512)]
    import faiss

    faiss.omp_set_num_threads(1)  # as the service searches (conf/serve.yaml: faiss_threads)
    with SpeechLibrary.open(lib_dir) as lib:  # in-process FAISS baseline (no HTTP)
        lib.search_topk(queries[:1], args.k)
        t = []
        for q in queries[:200]:
            s = time.perf_counter()
            lib.search_topk(q[None], args.k)
            t.append(1e3 * (time.perf_counter() - s))
    baseline = (percentile(t, 50), percentile(t, 99))
    if args.index == "milvus-lite":
        from speechret.search.milvus import close_clients

        close_clients()  # milvus-lite: the server process opens the file next

    r, w = new_token_file(tmp / "read.token"), new_token_file(tmp / "write.token")
    read, write = r.read_text().strip(), w.read_text().strip()
    lat: list[list[float]] = [[] for _ in range(args.clients)]
    added = [0]
    stop = threading.Event()
    with ServerProcess(lib_dir, r, w, tmp / "server.log", overrides=(f"readers={args.readers}", "access_log=false",
                                                                    "log_level=warning"), cwd=tmp) as srv:
        warm = ServiceClient(srv.url, read)
        warm.search([queries[0].tobytes()], mode="topk", k=args.k)

        def reader(i: int) -> None:
            cl = ServiceClient(srv.url, read)
            j = i
            while not stop.is_set():
                s = time.perf_counter()
                cl.search([queries[j % len(queries)].tobytes()], mode="topk", k=args.k)
                lat[i].append(1e3 * (time.perf_counter() - s))
                j += args.clients
            cl.close()

        def writer() -> None:
            cl = ServiceClient(srv.url, write)
            n = 0
            wr = np.random.default_rng(2)
            while not stop.is_set():
                items = [{"item_id": f"new-{n + i}", "pcm": wr.integers(-3000, 3000, 16000, dtype=np.int16),
                          "sample_rate": 16000} for i in range(args.writer_batch)]
                sealed = sealer.seal(items, wr.random((len(items), args.bits)) < 0.5)
                added[0] += len(cl.add(sealed))
                n += len(items)
            cl.close()

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(args.clients)]
        threads.append(threading.Thread(target=writer))
        start = time.perf_counter()
        for t_ in threads:
            t_.start()
        time.sleep(args.seconds)
        stop.set()
        for t_ in threads:
            t_.join()
        wall = time.perf_counter() - start
        final = warm.stats()["items"]
        warm.close()
    all_lat = [x for per in lat for x in per]
    print(f"library: {args.items} random {args.bits}-bit codes (built in {build_s:.1f} s), index {args.index}; "
          f"server readers={args.readers}; {args.clients} search clients + 1 writer ({args.writer_batch} items "
          f"per upload) for {wall:.1f} s; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    print()
    print("| what | p50 ms | p99 ms | mean ms | per second |")
    print("|---|---|---|---|---|")
    print(f"| service search (top-{args.k}, 1 code / request, HTTP included) | {percentile(all_lat, 50):.2f} | "
          f"{percentile(all_lat, 99):.2f} | {np.mean(all_lat):.2f} | {len(all_lat) / wall:.0f} searches |")
    print(f"| service add (writer, concurrent) | | | | {added[0] / wall:.0f} items |")
    print(f"| in-process search, same index (no HTTP, no load) | {baseline[0]:.2f} | {baseline[1]:.2f} | | |")
    print()
    print(f"items at the end: {final} (= {args.items} + {added[0]} added)")


if __name__ == "__main__":
    main()
