"""The cloud side of the papers' deployment: a search service over an encrypted library that
never holds its key.

All three papers (A §3, B §III, C §3) describe a data owner who encrypts speech and uploads
ciphertext plus hash codes to a cloud server, and a user who hashes a spoken query locally, sends
only the code, and decrypts the hits. This module is that server. It opens the library with
:meth:`SpeechLibrary.open` and *no cipher*; it stores what the key holder sealed
(:func:`speechret.library.remote.add_sealed`), answers searches by codes with the library's own
search path (:func:`speechret.library.query.search_codes`, every mode of the library's hash
method), and hands out ciphertext. What it learns is the library's keyless threat model (README,
"Threat model"): codes, distances, sizes, times, access patterns -- never audio, metadata, the
caller's ids or the key.

**Why FastAPI + uvicorn.** FastAPI (on Starlette) gives request validation from type
annotations (pydantic: a malformed body is a 422 naming the field, before our code runs), an
OpenAPI 3 schema generated from the same annotations (``/openapi.json``, behind the read token),
and standard bearer-token security schemes; uvicorn is the reference ASGI server (h11/httptools,
graceful shutdown). Both are widely used and maintained, and the ASGI layer lets the auth and
size checks run *before* a request body is read.

**Concurrency.** ``SpeechLibrary`` holds an SQLite connection and in-memory FAISS matchers,
which are not shared across threads. Searches run on a pool of ``readers`` threads, each with its
own library handle (its own connection and matchers, synced with SQLite before every search,
:meth:`SpeechLibrary.matchers`); adds and deletes run on one writer thread with its own handle.
Writers take the library's ``flock`` as any writer does, so an ``index.py`` on the same
directory (or a second service) takes turns with this one. The event loop only parses, checks
and answers.

**Crash safety.** An add is :func:`add_sealed`: blobs first, then one SQLite transaction, so a
server killed mid-batch loses at most the uncommitted batch (its blobs become orphans) and never
half-commits it; a re-upload adds exactly the missing items (ids are deterministic HMACs, and
committed ids are skipped). At start-up (``repair_on_start``) the service removes orphan blobs
and temp leftovers under the writer lock and re-derives the index if fsck finds it inconsistent
-- all keyless.

Auth (:mod:`speechret.service.auth`): every route but ``GET /health`` needs a bearer token,
checked before the body is read: none or a wrong one is 401, the read token on a write route 403.
Limits (:class:`Limits`): a body over ``max_body_bytes`` is 413 before it is read whole, as are
batches over ``max_items`` / ``max_queries`` and blobs over ``max_blob_bytes``; a bad code (wrong
width, padding bits set, a group over 27 bits) or bad base64 is 422 naming the item and field,
and nothing of that request is stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from speechret.errors import ConfigError
from speechret.hashing.sliding import DEFAULT_DIRECTION
from speechret.library.layout import _COLUMNS, OPAQUE_ID, LibraryError
from speechret.library.query import search_codes
from speechret.library.remote import SealedItem, add_sealed, check_code_row, decode_b64, encode_b64
from speechret.library.store import SpeechLibrary
from speechret.service.auth import READ, WRITE, Tokens

__all__ = ["API", "Limits", "create_app"]

log = logging.getLogger("speechret.service")
API = "/v1"
HEALTH = "/health"


@dataclass(frozen=True)
class Limits:
    """Request limits (``conf/serve.yaml``: ``limits``). ``max_body_bytes``: any request body;
    ``max_items``: items per upload; ``max_blob_bytes``: one encrypted blob; ``max_queries``:
    codes per search; ``max_k``: hits per query of a capped mode; ``max_lookup``: ids per lookup."""

    max_body_bytes: int = 64 << 20
    max_items: int = 256
    max_blob_bytes: int = 16 << 20
    max_queries: int = 256
    max_k: int = 1000
    max_lookup: int = 1000

    def __post_init__(self) -> None:
        for name, v in asdict(self).items():
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ConfigError(f"limits.{name}: a positive integer, got {v!r}")


class BadRequest(Exception):
    """A request whose content the library refuses (422), or that exceeds a limit (413)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------------------ wire types
HEX32 = r"^[0-9a-f]{32}$"
HEX64 = r"^[0-9a-f]{64}$"


class ItemIn(BaseModel):
    """One sealed item (:class:`speechret.library.remote.SealedItem`), binary fields in base64."""

    model_config = ConfigDict(extra="forbid")
    item_id: str = Field(pattern=HEX32, description="opaque id: HMAC of the owner's id (32 hex)")
    blob: str = Field(description="base64 of the encrypted audio")
    blob_sha256: str = Field(pattern=HEX64, description="sha256 of the blob (checked on arrival)")
    code: str = Field(description="base64 of the stored code row: packed bits (ceil(code_bits/8) bytes), or "
                                  "little-endian uint32 words, one per 27-bit group (paper C)")
    meta: str = Field(description="base64 of the AES-GCM sealed metadata document")
    duration: float = Field(gt=0, allow_inf_nan=False)
    sample_rate: int = Field(gt=0)


class AddRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[ItemIn]


class AddResponse(BaseModel):
    added: list[str]
    skipped: list[str] = Field(description="ids already committed (or repeated in the batch)")


class SearchRequest(BaseModel):
    """Codes as stored (keyed by the client when the library keys codes) and the search mode's
    parameters (:func:`speechret.library.query.search_codes`)."""

    model_config = ConfigDict(extra="forbid")
    codes: list[str] = Field(description="base64 code rows, one per query (ItemIn.code's form)")
    mode: Literal["topk", "threshold", "two_stage", "keyword", "full_speech"] = "topk"
    k: int = 10
    threshold: float = 0.25
    gamma: float = 0.25
    stage2: Literal["topk", "threshold"] = "topk"
    direction: Literal["query_in_item", "symmetric"] = DEFAULT_DIRECTION


class Hit(BaseModel):
    item_id: str
    rank: int
    distance: float
    span: tuple[int, int] | None = None


class SearchResponse(BaseModel):
    mode: str
    results: list[list[Hit]]


class LookupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_ids: list[str]


class ItemOut(BaseModel):
    item_id: str
    row: int
    duration: float | None
    sample_rate: int | None
    category: int | None
    n_groups: int | None
    blob_sha256: str
    meta: str = Field(description="base64 of the sealed metadata (the key holder opens it)")
    added_at: float


class LookupResponse(BaseModel):
    items: list[ItemOut]
    unknown: list[str]


# ------------------------------------------------------------------------------ library pool
class LibraryPool:
    """Per-thread :class:`SpeechLibrary` handles opened without a key: ``readers`` search
    threads and one writer thread (see the module docstring)."""

    def __init__(self, path: Path, readers: int = 2):
        self.path = Path(path)
        SpeechLibrary.read_manifest(self.path)  # a bad directory fails here, naming it
        self._local = threading.local()
        self._handles: list[SpeechLibrary] = []
        self._guard = threading.Lock()
        self.readers = ThreadPoolExecutor(max_workers=int(readers), thread_name_prefix="speechret-read")
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="speechret-write")

    def _lib(self) -> SpeechLibrary:
        lib = getattr(self._local, "lib", None)
        if lib is None:
            lib = self._local.lib = SpeechLibrary.open(self.path)
            with self._guard:
                self._handles.append(lib)
        return lib

    async def read(self, fn: Callable[[SpeechLibrary], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.readers, lambda: fn(self._lib()))

    async def write(self, fn: Callable[[SpeechLibrary], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.writer, lambda: fn(self._lib()))

    def close(self) -> None:
        self.readers.shutdown(wait=True)
        self.writer.shutdown(wait=True)
        # each handle belongs to a thread that has ended; its connection is released with it
        self._handles.clear()


def startup_check(lib: SpeechLibrary, repair: bool = True) -> dict[str, Any]:
    """Keyless start-up check: fsck; with ``repair``, orphan blobs / temp leftovers (a writer
    killed before its commit) are removed under the writer lock, and an index that disagrees
    with SQLite is re-derived. Returns what was found and done."""
    report = lib.fsck(remove=repair)
    done = {"orphans_removed": len(report["orphans"]) if repair else 0,
            "tmp_removed": len(report["tmp"]) if repair else 0, "index_rebuilt": False,
            "unrecoverable": list(report["unrecoverable"])}
    if repair and (report["index"] or report["manifest"]):
        log.warning("index inconsistent with SQLite (%d problems): re-deriving it", len(report["index"]))
        lib.rebuild()
        done["index_rebuilt"] = True
    lib.sync_index()
    return done


# ------------------------------------------------------------------------------ ASGI guards
def _json_response(status: int, detail: str, headers: dict[str, str] | None = None) -> tuple[dict, bytes]:
    body = json.dumps({"detail": detail}).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    hdrs += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return {"type": "http.response.start", "status": status, "headers": hdrs}, body


class _TooLarge(HTTPException):
    """Raised by the counting ``receive``: an HTTPException, so FastAPI's body reader re-raises
    it (other errors there become a 400) and it is answered as a 413."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body over the limit of {limit} bytes")


class GuardMiddleware:
    """Pure ASGI: token check, then body size, before any route reads the body. Every path but
    ``GET /health`` needs a token; methods other than GET / HEAD need the write token, except
    the read-only POST routes (``read_posts``)."""

    def __init__(self, app: Any, tokens: Tokens, max_body_bytes: int, read_posts: frozenset[str]):
        self.app, self.tokens, self.max_body = app, tokens, int(max_body_bytes)
        self.read_posts = read_posts

    async def _send(self, send: Any, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        start, body = _json_response(status, detail, headers)
        await send(start)
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if not (path == HEALTH and method in ("GET", "HEAD")):
            auth = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
            scheme, _, token = auth.partition(" ")
            role = self.tokens.role(token.strip()) if scheme.lower() == "bearer" else None
            if role is None:
                return await self._send(send, 401, "missing or invalid bearer token" if auth else
                                        "a bearer token is required", {"www-authenticate": "Bearer"})
            need = READ if method in ("GET", "HEAD") or (method == "POST" and path in self.read_posts) else WRITE
            if need == WRITE and role != WRITE:
                return await self._send(send, 403, "this route needs the write token")
            scope.setdefault("state", {})["role"] = role
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await self._send(send, 413, f"request body over the limit of {self.max_body} bytes")
        seen = 0
        started = False

        async def counted() -> dict:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_body:
                    raise _TooLarge(self.max_body)
            return msg

        async def tracked(msg: dict) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await self._send(send, 413, f"request body over the limit of {self.max_body} bytes")


# ------------------------------------------------------------------------------ the app
def _hits(rows: list[dict]) -> list[Hit]:
    return [Hit(item_id=h["item_id"], rank=int(h["rank"]), distance=float(h["ber"]),
                span=None if h.get("span") is None else (int(h["span"][0]), int(h["span"][1]))) for h in rows]


def create_app(library: str | Path, tokens: Tokens, limits: Limits | None = None, readers: int = 2,
               repair_on_start: bool = True) -> FastAPI:
    """The service for the library directory ``library`` (opened without a key; see the module
    docstring). ``tokens``: :class:`~speechret.service.auth.Tokens`; ``limits``: :class:`Limits`;
    ``readers``: search threads; ``repair_on_start``: remove a crashed writer's orphans and
    re-derive an inconsistent index when the service starts."""
    limits = limits or Limits()
    if isinstance(readers, bool) or int(readers) < 1:
        raise ConfigError(f"readers: a positive number of search threads, got {readers!r}")
    pool = LibraryPool(Path(library), int(readers))
    counters = {"started": time.time(), "adds": 0, "items_added": 0, "searches": 0, "queries": 0, "fetches": 0,
                "deletes": 0}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        done = await pool.write(lambda lib: startup_check(lib, repair_on_start))
        log.info("library %s: %s", pool.path.name, done)
        counters["startup"] = done
        yield
        pool.close()

    app = FastAPI(title="speechret search service", version="1",
                  description="Keyless search over an encrypted speechret library (see speechret.service.app).",
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    bearer = HTTPBearer(auto_error=False, description="read token (search, fetch, stats) or write token "
                                                      "(also add, delete)")

    def need(role: str) -> Callable[..., str]:
        # the GuardMiddleware has checked the token already; this declares the scheme in the
        # OpenAPI schema and re-checks it for routes mounted elsewhere
        def check(request: Request, cred: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
            got = tokens.role(cred.credentials if cred else None)
            if got is None:
                raise HTTPException(401, "missing or invalid bearer token", {"WWW-Authenticate": "Bearer"})
            if role == WRITE and got != WRITE:
                raise HTTPException(403, "this route needs the write token")
            return got
        return check

    app.add_middleware(GuardMiddleware, tokens=tokens, max_body_bytes=limits.max_body_bytes,
                       read_posts=frozenset({f"{API}/search", f"{API}/items/lookup"}))

    @app.exception_handler(BadRequest)
    async def _bad(request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.get(HEALTH, tags=["service"])
    async def health() -> dict[str, str]:
        """Liveness: no token needed, tells nothing about the library."""
        return {"status": "ok"}

    @app.get(f"{API}/manifest", tags=["library"], dependencies=[Depends(need(READ))])
    async def manifest() -> dict[str, Any]:
        """The library's manifest (hash method, code bits, cipher name, key id, keyed codes,
        index): what a client needs to seal items and shape queries. It holds no secret."""
        return await pool.read(lambda lib: dict(lib.manifest))

    @app.get(f"{API}/stats", tags=["library"], dependencies=[Depends(need(READ))])
    async def stats() -> dict[str, Any]:
        """Items, stored seconds, groups, blob bytes, index state, limits and request counters."""
        s = await pool.read(lambda lib: lib.stats())
        return {**s, "limits": asdict(limits), "readers": pool.readers._max_workers, "requests": dict(counters)}

    @app.post(f"{API}/items", tags=["items"], response_model=AddResponse, dependencies=[Depends(need(WRITE))])
    async def add_items(req: AddRequest) -> AddResponse:
        """Store sealed items (all checked first: one bad item is a 422 naming it, nothing stored)."""
        if len(req.items) > limits.max_items:
            raise BadRequest(f"items: {len(req.items)} items, more than the limit of {limits.max_items} per upload",
                             413)
        sealed = []
        for i, it in enumerate(req.items):
            try:
                blob = decode_b64(it.blob, f"items[{i}].blob")
                if len(blob) > limits.max_blob_bytes:
                    raise BadRequest(f"items[{i}].blob: {len(blob)} bytes, more than the limit of "
                                     f"{limits.max_blob_bytes}", 413)
                sealed.append(SealedItem(it.item_id, blob, decode_b64(it.code, f"items[{i}].code"),
                                         decode_b64(it.meta, f"items[{i}].meta"), float(it.duration),
                                         int(it.sample_rate), it.blob_sha256))
            except LibraryError as exc:
                raise BadRequest(str(exc)) from None

        def run(lib: SpeechLibrary) -> list[str]:
            try:
                return add_sealed(lib, sealed, max_blob_bytes=limits.max_blob_bytes)
            except LibraryError as exc:
                if "locked by another writer" in str(exc):
                    raise
                raise BadRequest(str(exc)) from None

        added = await pool.write(run)
        counters["adds"] += 1
        counters["items_added"] += len(added)
        log.info("added %d of %d items", len(added), len(sealed))
        got = set(added)
        return AddResponse(added=added, skipped=[s.item_id for s in sealed if s.item_id not in got])

    @app.post(f"{API}/search", tags=["search"], response_model=SearchResponse, dependencies=[Depends(need(READ))])
    async def search(req: SearchRequest) -> SearchResponse:
        """Search by codes in any mode of the library's hash method; hits name opaque ids."""
        n = len(req.codes)
        if n > limits.max_queries:
            raise BadRequest(f"codes: {n} queries, more than the limit of {limits.max_queries} per search", 413)
        if req.k > limits.max_k:
            raise BadRequest(f"k: {req.k} is over the limit of {limits.max_k} hits per query")
        raw = []
        for i, c in enumerate(req.codes):
            try:
                raw.append(decode_b64(c, f"codes[{i}]"))
            except LibraryError as exc:
                raise BadRequest(str(exc)) from None

        def run(lib: SpeechLibrary) -> list[list[dict]]:
            h = lib.hashing
            try:
                rows = [check_code_row(h, r, f"codes[{i}]")[0] for i, r in enumerate(raw)]
                if not rows:
                    return []
                batch = h.decode_rows(rows)
                return search_codes(lib, batch, mode=req.mode, k=req.k, threshold=req.threshold, gamma=req.gamma,
                                    direction=req.direction, stage2=req.stage2, prekeyed=True)
            except (ConfigError, ValueError) as exc:
                raise BadRequest(str(exc)) from None
            except LibraryError as exc:
                if str(exc).startswith("codes["):
                    raise BadRequest(str(exc)) from None
                raise

        results = await pool.read(run)
        counters["searches"] += 1
        counters["queries"] += n
        return SearchResponse(mode=req.mode, results=[_hits(r) for r in results])

    def _known(lib: SpeechLibrary, item_id: str) -> str:
        if not OPAQUE_ID.match(item_id) or not lib._exists(item_id):
            raise HTTPException(404, f"no item {item_id[:40]!r}")
        return item_id

    @app.get(f"{API}/items/{{item_id}}/blob", tags=["items"], dependencies=[Depends(need(READ))],
             response_class=Response, responses={200: {"content": {"application/octet-stream": {}}}})
    async def fetch_blob(item_id: str) -> Response:
        """The encrypted blob (its sha256 checked against the row first)."""
        blob = await pool.read(lambda lib: lib.get_blob(_known(lib, item_id)))
        counters["fetches"] += 1
        return Response(blob, media_type="application/octet-stream")

    @app.post(f"{API}/items/lookup", tags=["items"], response_model=LookupResponse,
              dependencies=[Depends(need(READ))])
    async def lookup(req: LookupRequest) -> LookupResponse:
        """Rows of the given opaque ids (sealed metadata included; unknown ids listed apart)."""
        if len(req.item_ids) > limits.max_lookup:
            raise BadRequest(f"item_ids: {len(req.item_ids)} ids, more than the limit of {limits.max_lookup}", 413)

        def run(lib: SpeechLibrary) -> tuple[list[ItemOut], list[str]]:
            found, unknown = [], []
            for oid in req.item_ids:
                r = lib._conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM items WHERE item_id = ?",
                                      (oid,)).fetchone() if OPAQUE_ID.match(oid) else None
                if r is None:
                    unknown.append(oid)
                    continue
                d = dict(zip(_COLUMNS, r))
                found.append(ItemOut(item_id=oid, row=d["row"], duration=d["duration"], sample_rate=d["sample_rate"],
                                     category=d["category"], n_groups=d["n_groups"], blob_sha256=d["checksum"],
                                     meta=encode_b64(d["meta"] or b""), added_at=d["added_at"]))
            return found, unknown

        found, unknown = await pool.read(run)
        return LookupResponse(items=found, unknown=unknown)

    @app.delete(f"{API}/items/{{item_id}}", tags=["items"], dependencies=[Depends(need(WRITE))])
    async def delete(item_id: str) -> dict[str, list[str]]:
        """Remove an item (row and blob) and re-derive the index."""
        removed = await pool.write(lambda lib: lib.remove([_known(lib, item_id)]))
        counters["deletes"] += 1
        log.info("removed 1 item")
        return {"removed": removed}

    @app.get(f"{API}/fsck", tags=["library"], dependencies=[Depends(need(READ))])
    async def fsck() -> dict[str, Any]:
        """The keyless fsck report (rows, blobs, checksums, manifest, index vs SQLite)."""
        return await pool.read(lambda lib: lib.fsck())

    return app
