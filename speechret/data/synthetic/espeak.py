"""espeak-ng access: load ``libespeak-ng`` (``espeakng_loader``) and synthesise int16 samples.

**Determinism.** espeak-ng keeps synthesis state in C statics across calls (pitch-flutter phase,
echo buffer, AGC), so the same text synthesised twice in one process is *not* bit-exact, even
after ``espeak_Terminate``/``espeak_Initialize``.  The synthesiser therefore runs in a small helper
process (stdlib only) that initialises espeak once and **forks a child per utterance**: every
utterance starts from the same pristine state, and the result depends only on the request — not
on what else is generated, in which order, or by how many workers.  Where ``os.fork`` does not
exist the library is called in-process (repeatable across runs of the same script, not across
different histories).  If the library cannot be loaded, an ``espeak-ng`` executable on ``PATH``
is used instead.

:class:`EspeakSynth` is the pool of these backends; :class:`SynthesisError` is what every failure
raises.
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import queue
import shutil
import struct
import subprocess
import sys
import threading
import wave
from pathlib import Path
from typing import Any

import numpy as np

from speechret.errors import SpeechretError

__all__ = ["VOICE", "SynthesisError", "EspeakSynth", "available_variants"]

#: espeak-ng voice that reads tone-numbered pinyin ("Chinese (Mandarin, latin as Pinyin)",
#: ``espeak-ng-data/lang/sit/cmn-Latn-pinyin``); the plain ``cmn`` voice reads Chinese characters
#: through its dictionary and gets many words wrong.
VOICE = "cmn-latn-pinyin"


class SynthesisError(SpeechretError, RuntimeError):
    """espeak-ng could not be loaded or failed on an utterance (the message says which)."""


# espeak_AUDIO_OUTPUT: PLAYBACK=0, RETRIEVAL=1, SYNCHRONOUS=2, SYNCH_PLAYBACK=3
# espeak_PARAMETER: RATE=1, VOLUME=2, PITCH=3, RANGE=4; espeak_POSITION_TYPE: POS_CHARACTER=1
# espeakCHARS_UTF8=1.  The helper below is run as `python -I -S -c _HELPER lib data` and only uses
# the standard library so that it starts in ~20 ms and forks cheaply.
_HELPER = r"""
import ctypes, json, os, struct, sys
lib = ctypes.CDLL(sys.argv[1])
lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                             ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
seed_fn = getattr(lib, "espeak_ng_SetRandSeed", None)
if seed_fn is not None:
    seed_fn.argtypes = [ctypes.c_long]
out = sys.stdout.buffer
inp = sys.stdin.buffer
sr = lib.espeak_Initialize(2, 0, sys.argv[2].encode(), 0)
chunks = []
CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
def _cb(wav, n, events):
    if wav and n > 0:
        chunks.append(ctypes.string_at(wav, 2 * n))
    return 0
cb = CB(_cb)
lib.espeak_SetSynthCallback(cb)
def send(status, payload):
    out.write(struct.pack("<iI", status, len(payload)) + payload)
    out.flush()
if sr <= 0:
    send(-1, ("espeak_Initialize failed (%d) with data path %s" % (sr, sys.argv[2])).encode())
    sys.exit(1)
send(0, struct.pack("<i", sr))
def synth(req):
    if lib.espeak_SetVoiceByName(req["voice"].encode()) != 0:
        return 2, ("voice %r not found" % req["voice"]).encode()
    for pid, key in ((1, "rate"), (3, "pitch"), (4, "range")):
        if req.get(key) is not None:
            lib.espeak_SetParameter(pid, int(req[key]), 0)
    if seed_fn is not None:
        seed_fn(int(req.get("seed", 0)))
    text = req["text"].encode("utf-8") + b"\0"
    rc = lib.espeak_Synth(text, len(text), 0, 1, 0, 1, None, None)
    if rc != 0:
        return 3, ("espeak_Synth returned %d" % rc).encode()
    return 0, b"".join(chunks)
while True:
    line = inp.readline()
    if not line:
        break
    req = json.loads(line)
    if not hasattr(os, "fork"):
        del chunks[:]
        status, payload = synth(req)
        send(status, payload)
        continue
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            status, payload = synth(req)
        except BaseException as exc:
            status, payload = 4, repr(exc).encode()
        data = struct.pack("<iI", status, len(payload)) + payload
        view = memoryview(data)
        while view:
            k = os.write(w, view)
            view = view[k:]
        os._exit(0)
    os.close(w)
    parts = []
    while True:
        b = os.read(r, 1 << 16)
        if not b:
            break
        parts.append(b)
    os.close(r)
    _, st = os.waitpid(pid, 0)
    data = b"".join(parts)
    if len(data) >= 8:
        status, n = struct.unpack("<iI", data[:8])
        if len(data) == 8 + n:
            out.write(data)
            out.flush()
            continue
    send(5, ("synthesis child died (wait status %d) for %r" % (st, req["text"])).encode())
"""


def _espeak_paths() -> tuple[str, str]:
    try:
        import espeakng_loader
    except ImportError as exc:  # pragma: no cover - dependency of the project
        raise SynthesisError(
            "espeakng_loader is not installed (pip install espeakng-loader); it ships libespeak-ng"
        ) from exc
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


def available_variants() -> list[str]:
    """Names of the voice variants in the installed ``espeak-ng-data/voices/!v``."""
    try:
        _, data = _espeak_paths()
    except SynthesisError:
        return []
    d = Path(data) / "voices" / "!v"
    return sorted(p.name for p in d.iterdir() if p.is_file()) if d.is_dir() else []


class _Helper:
    """One helper process (pristine espeak state; forks per utterance)."""

    def __init__(self, lib: str, data: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _HELPER, lib, data],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        status, payload = self._read()
        if status != 0:
            self.close()
            raise SynthesisError(f"espeak-ng helper failed to start: {payload.decode(errors='replace')}")
        self.sample_rate = struct.unpack("<i", payload)[0]

    def _read(self) -> tuple[int, bytes]:
        assert self.proc.stdout is not None
        head = self.proc.stdout.read(8)
        if len(head) < 8:
            err = b""
            if self.proc.poll() is not None and self.proc.stderr is not None:
                err = self.proc.stderr.read()
            raise SynthesisError(
                "espeak-ng helper process exited unexpectedly"
                + (f": {err.decode(errors='replace').strip()[-2000:]}" if err else "")
            )
        status, n = struct.unpack("<iI", head)
        payload = self.proc.stdout.read(n) if n else b""
        if len(payload) != n:
            raise SynthesisError("espeak-ng helper process sent a truncated reply")
        return status, payload

    def request(self, req: dict[str, Any]) -> tuple[int, bytes]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(req, ensure_ascii=False) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
        except BrokenPipeError as exc:
            raise SynthesisError("espeak-ng helper process is gone") from exc
        return self._read()

    def close(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        finally:
            for f in (self.proc.stdout, self.proc.stderr):
                if f:
                    f.close()


class _InProcess:
    """espeak-ng called through ctypes in this process (no fork available)."""

    _lock = threading.Lock()

    def __init__(self, lib_path: str, data: str):
        self.lib = ctypes.CDLL(lib_path)
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
        self.seed_fn = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self.seed_fn is not None:
            self.seed_fn.argtypes = [ctypes.c_long]
        self.sample_rate = lib.espeak_Initialize(2, 0, data.encode(), 0)
        if self.sample_rate <= 0:
            raise SynthesisError(f"espeak_Initialize failed with data path {data}")
        self.chunks: list[bytes] = []
        CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

        def _cb(wav: Any, n: int, events: Any) -> int:
            if wav and n > 0:
                self.chunks.append(ctypes.string_at(wav, 2 * n))
            return 0

        self._cb = CB(_cb)
        lib.espeak_SetSynthCallback(self._cb)

    def request(self, req: dict[str, Any]) -> tuple[int, bytes]:
        with self._lock:
            self.lib.espeak_SetSynthCallback(self._cb)
            self.chunks = []
            if self.lib.espeak_SetVoiceByName(req["voice"].encode()) != 0:
                return 2, f"voice {req['voice']!r} not found".encode()
            for pid, key in ((1, "rate"), (3, "pitch"), (4, "range")):
                if req.get(key) is not None:
                    self.lib.espeak_SetParameter(pid, int(req[key]), 0)
            if self.seed_fn is not None:
                self.seed_fn(int(req.get("seed", 0)))
            text = req["text"].encode("utf-8") + b"\0"
            rc = self.lib.espeak_Synth(text, len(text), 0, 1, 0, 1, None, None)
            if rc != 0:
                return 3, f"espeak_Synth returned {rc}".encode()
            return 0, b"".join(self.chunks)

    def close(self) -> None:
        pass


class _Executable:
    """Fallback: the ``espeak-ng`` program (Debian package ``espeak-ng``), one process per call."""

    def __init__(self, exe: str):
        self.exe = exe
        self.sample_rate = 22050

    def request(self, req: dict[str, Any]) -> tuple[int, bytes]:
        cmd = [self.exe, "-v", req["voice"], "--stdout"]
        if req.get("rate") is not None:
            cmd += ["-s", str(int(req["rate"]))]
        if req.get("pitch") is not None:
            cmd += ["-p", str(int(req["pitch"]))]
        cmd.append(req["text"])
        res = subprocess.run(cmd, capture_output=True, timeout=60)
        if res.returncode != 0:
            return 3, res.stderr or f"{self.exe} exited with {res.returncode}".encode()
        try:
            with wave.open(io.BytesIO(res.stdout)) as wf:
                self.sample_rate = wf.getframerate()
                return 0, wf.readframes(wf.getnframes())
        except (wave.Error, EOFError) as exc:
            return 3, f"{self.exe} produced no WAV ({exc})".encode()

    def close(self) -> None:
        pass


class EspeakSynth:
    """A pool of espeak-ng synthesisers (see the module docstring on determinism).

    ``synth(text, voice, rate, pitch, range_, seed) -> (int16 samples, sample_rate)``.  Thread
    safe; ``workers`` helper processes serve requests in parallel.  Use as a context manager or
    call :meth:`close`.

    Args:
        workers: number of helper processes (default ``min(4, cpu_count)``).
        backend: ``"auto"`` (fork helper, else in-process, else executable), ``"helper"``,
            ``"inprocess"`` or ``"executable"``.
    """

    def __init__(self, workers: int | None = None, backend: str = "auto"):
        self.workers = max(1, int(workers or min(4, os.cpu_count() or 1)))
        self._pool: queue.Queue[Any] = queue.Queue()
        self._all: list[Any] = []
        self.backend = self._start(backend)
        self.sample_rate = int(self._all[0].sample_rate)

    def _start(self, backend: str) -> str:
        if backend not in ("auto", "helper", "inprocess", "executable"):
            raise ValueError(f"unknown espeak backend {backend!r}")
        errors: list[str] = []
        if backend in ("auto", "helper", "inprocess"):
            try:
                lib, data = _espeak_paths()
                if not os.path.isfile(lib):
                    raise SynthesisError(f"{lib}: libespeak-ng not found")
                use_helper = backend == "helper" or (backend == "auto" and hasattr(os, "fork"))
                if use_helper:
                    for _ in range(self.workers):
                        h = _Helper(lib, data)
                        self._all.append(h)
                        self._pool.put(h)
                    return "helper"
                h = _InProcess(lib, data)
                self._all.append(h)
                for _ in range(self.workers):
                    self._pool.put(h)
                return "inprocess"
            except (SynthesisError, OSError) as exc:
                self.close()
                errors.append(str(exc))
                if backend != "auto":
                    raise SynthesisError(f"espeak-ng {backend} backend unavailable: {exc}") from exc
        exe = shutil.which("espeak-ng") or shutil.which("espeak")
        if exe is None:
            raise SynthesisError(
                "espeak-ng unavailable: " + "; ".join(errors + ["no espeak-ng executable on PATH"])
            )
        h = _Executable(exe)
        self._all.append(h)
        for _ in range(self.workers):
            self._pool.put(h)
        return "executable"

    def synth(
        self,
        text: str,
        voice: str = VOICE,
        rate: int | None = None,
        pitch: int | None = None,
        range_: int | None = None,
        seed: int = 0,
    ) -> tuple[np.ndarray, int]:
        req = {"text": text, "voice": voice, "rate": rate, "pitch": pitch, "range": range_, "seed": seed}
        h = self._pool.get()
        try:
            status, payload = h.request(req)
        finally:
            self._pool.put(h)
        if status != 0:
            raise SynthesisError(f"espeak-ng failed on {text!r} with voice {voice!r}: {payload.decode(errors='replace')}")
        samples = np.frombuffer(payload, dtype="<i2").astype(np.int16)
        if samples.size == 0:
            raise SynthesisError(f"espeak-ng produced no audio for {text!r} with voice {voice!r}")
        return samples, int(h.sample_rate)

    def close(self) -> None:
        for h in self._all:
            try:
                h.close()
            except Exception:  # noqa: BLE001 - best effort shutdown
                pass
        self._all = []

    def __enter__(self) -> EspeakSynth:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
