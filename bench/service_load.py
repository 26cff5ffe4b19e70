"""Load benchmark of the keyless search service: N concurrent clients searching while one writer
adds, against a real server process on 127.0.0.1 (speechret.service.launch.ServerProcess).

    python bench/service_load.py [--items 100000] [--bits 384] [--clients 8] [--seconds 10]
                                 [--readers 2] [--k 10] [--writer-batch 8] [--rates 50 100 200]

The library is synthetic: ``--items`` random ``--bits``-bit paper-A codes inserted as rows
straight into a new library's SQLite table (SpeechLibrary._insert_rows, the transaction every
add ends in; the rows name blob files that are never written: searching never reads blobs), then its FAISS
index is derived with SpeechLibrary.rebuild(). Building 100k real encrypted items would take
far longer and does not change what a search does. The writer adds real sealed items (random
PCM, AES-GCM, ItemSealer) through POST /v1/items while the readers search, so every search also
pays the index sync with SQLite. Each client is a thread with its own httpx connection sending
one query code per request (top-k); latency is measured per request on the client (HTTP
included). The first row is a closed loop (every client sends its next query as soon as the
last is answered: the saturation throughput, where latency is queueing, ``clients / throughput``
by Little's law); each ``--rates`` row offers that many searches/s in all, each client sending
with exponential gaps, its latency timed from the scheduled send so that a slow answer delays no
measurement (no coordinated omission, Tene 2013), while the writer uploads ``--write-rate``
times a second (in the closed loop it uploads as fast as it can). Each row also gives the CPU
per request of the server process (``/proc/<pid>/stat``) and of this process (clients and the
writer's sealing), the figure that bounds throughput on a machine whose cores the two share.
Prints a markdown table, plus the in-process latency of the same queries on the same index for
comparison. ``--index``:
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


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (``/proc/<pid>/stat`` fields 14, 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    ap.add_argument("--writer-batch", type=int, default=8, help="items per upload; 0: no writer")
    ap.add_argument("--write-rate", type=float, default=4.0,
                    help="uploads/s of the writer in the --rates rows (0: as fast as it can, as in the closed loop)")
    ap.add_argument("--rates", nargs="*", default=["50", "100", "200"],
                    help="after the closed loop, one row per offered search rate (searches/s over all clients)")
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
    rates = [None] + [float(x) for x in args.rates]  # None: the closed loop (each client sends as soon as answered)
    rows: list[dict] = []
    n_written = [0]
    with ServerProcess(lib_dir, r, w, tmp / "server.log", overrides=(f"readers={args.readers}", "access_log=false",
                                                                    "log_level=warning"), cwd=tmp) as srv:
        warm = ServiceClient(srv.url, read)
        warm.search([queries[0].tobytes()], mode="topk", k=args.k)
        for rate in rates:
            rows.append(load_phase(srv, read, write, sealer, queries, args, rate, n_written))
        final = warm.stats()["items"]
        warm.close()
    added = sum(row["added"] for row in rows)
    cores = os.cpu_count() or 1
    print(f"library: {args.items} random {args.bits}-bit codes (built in {build_s:.1f} s), index {args.index}; "
          f"server readers={args.readers}; {args.clients} search clients + 1 writer ({args.writer_batch} items "
          f"per upload), {args.seconds:.0f} s per row; {cores} CPUs; load average {os.getloadavg()[0]:.2f}")
    print()
    print("| search load | p50 ms | p99 ms | mean ms | searches/s | adds/s | CPU ms / request (server + clients) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        what = (f"closed loop, {args.clients} clients" if row["rate"] is None
                else f"{row['rate']:.0f}/s offered by {args.clients} clients (Poisson)")
        print(f"| {what} | {row['p50']:.2f} | {row['p99']:.2f} | {row['mean']:.2f} | {row['searches_s']:.0f} | "
              f"{row['adds_s']:.0f} | {row['cpu_ms']:.2f} ({row['cpu_server_ms']:.2f} + {row['cpu_client_ms']:.2f}) |")
    print(f"| in-process search, same index (no HTTP, no load) | {baseline[0]:.2f} | {baseline[1]:.2f} | | | | |")
    print()
    print(f"items at the end: {final} (= {args.items} + {added} added)")
    closed = rows[0]
    print(f"Closed loop: {args.clients} requests always in flight wait {args.clients} / throughput each (Little's law), "
          f"so p50 <= 5 ms would need >= {args.clients / 5e-3:.0f} searches/s, i.e. <= "
          f"{1e3 * cores / (args.clients / 5e-3):.2f} ms of CPU per request on {cores} cores; measured "
          f"{closed['cpu_ms']:.2f} ms (server {closed['cpu_server_ms']:.2f}, of which the search itself is about "
          f"{baseline[0]:.2f}; the clients and the writer's sealing {closed['cpu_client_ms']:.2f}).  The paced rows "
          f"time each request from its scheduled send (no coordinated omission).")


def load_phase(srv: ServerProcess, read: str, write: str, sealer: ItemSealer, queries: np.ndarray,
               args: argparse.Namespace, rate: float | None, n_written: list[int]) -> dict:
    """One load level: ``args.clients`` search threads (closed loop when ``rate`` is None, else
    each sending at ``rate / clients`` per second with exponential gaps, timed from the scheduled
    send) and one writer (as fast as it can, or ``args.write_rate`` uploads/s when paced), for
    ``args.seconds``.  Returns latencies, throughputs and CPU per request."""
    lat: list[list[float]] = [[] for _ in range(args.clients)]
    added = [0]
    uploads = [0]
    stop = threading.Event()

    def reader(i: int) -> None:
        cl = ServiceClient(srv.url, read)
        gaps = np.random.default_rng(100 + i)
        j = i
        due = time.perf_counter()
        while not stop.is_set():
            if rate is not None:
                due += gaps.exponential(args.clients / rate)
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            s = due if rate is not None else time.perf_counter()
            cl.search([queries[j % len(queries)].tobytes()], mode="topk", k=args.k)
            lat[i].append(1e3 * (time.perf_counter() - s))
            j += args.clients
        cl.close()

    def writer() -> None:
        cl = ServiceClient(srv.url, write)
        wr = np.random.default_rng(2 + n_written[0])
        due = time.perf_counter()
        while not stop.is_set():
            if rate is not None and args.write_rate > 0:  # paced rows: a paced writer too
                due += 1.0 / args.write_rate
                if due > time.perf_counter():
                    time.sleep(due - time.perf_counter())
            n = n_written[0]
            items = [{"item_id": f"new-{n + i}", "pcm": wr.integers(-3000, 3000, 16000, dtype=np.int16),
                      "sample_rate": 16000} for i in range(args.writer_batch)]
            sealed = sealer.seal(items, wr.random((len(items), args.bits)) < 0.5)
            added[0] += len(cl.add(sealed))
            uploads[0] += 1
            n_written[0] += len(items)
        cl.close()

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(args.clients)]
    if args.writer_batch > 0:  # --writer-batch 0: searches only
        threads.append(threading.Thread(target=writer))
    start, cpu0, srv0 = time.perf_counter(), time.process_time(), process_cpu_s(srv.pid)
    for t_ in threads:
        t_.start()
    time.sleep(args.seconds)
    stop.set()
    for t_ in threads:
        t_.join()
    wall = time.perf_counter() - start
    cpu_client, cpu_server = time.process_time() - cpu0, process_cpu_s(srv.pid) - srv0
    all_lat = [x for per in lat for x in per]
    n_req = max(len(all_lat) + uploads[0], 1)
    return {"rate": rate, "p50": percentile(all_lat, 50), "p99": percentile(all_lat, 99),
            "mean": float(np.mean(all_lat)) if all_lat else float("nan"), "searches_s": len(all_lat) / wall,
            "adds_s": added[0] / wall, "added": added[0], "cpu_ms": 1e3 * (cpu_server + cpu_client) / n_req,
            "cpu_server_ms": 1e3 * cpu_server / n_req, "cpu_client_ms": 1e3 * cpu_client / n_req}


if __name__ == "__main__":
    main()
