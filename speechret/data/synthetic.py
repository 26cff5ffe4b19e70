"""Built-in synthetic Mandarin corpus, spoken by espeak-ng.

The three papers evaluate on recorded Mandarin (DSPSpeech-20 isolated words for A and B, THCHS-30
/ self-recorded sentences for C).  So that every experiment, test and demo runs without
downloading anything, this module generates a small corpus with the same structure — speakers ×
content classes × repetitions — from the espeak-ng formant synthesiser shipped by
``espeakng_loader`` (``libespeak-ng.so`` + ``espeak-ng-data``).

* **Text → speech.** Mandarin is fed as tone-numbered pinyin (``"bei3 jing1"``) to the
  :data:`VOICE` ``cmn-latn-pinyin`` ("Chinese (Mandarin, latin as Pinyin)",
  ``espeak-ng-data/lang/sit/cmn-Latn-pinyin``); the plain ``cmn`` voice reads Chinese characters
  through its dictionary and gets many words wrong.  ``ü`` is written ``v`` (``lv4``).
* **Speakers** are espeak voice variants (``espeak-ng-data/voices/!v``: ``m1``…``m7``, ``f1``…``f5``,
  ``klatt``…) alternating male/female, each with its own base pitch, pitch range, speaking rate
  and recording gain drawn from ``seed``.  More speakers than variants reuse variants with other
  pitch/rate.
* **Repetitions** of the same content by the same speaker differ slightly (seeded jitter of rate
  ±8 %, pitch ±4, range ±6, gain ±1 dB, leading/trailing silence), so repetition-based splits
  (train on repetitions 1-6, test on 7-8, as the DSPSpeech-20 protocol of papers A/B does by
  recordings) are meaningful.
* **Post-processing**: 22,050 Hz → 16 kHz (``scipy.signal.resample_poly(x, 320, 441)``),
  silence trimmed at -40 dB below the peak then padded with 60-200 ms, peak normalised to
  :data:`TARGET_PEAK_DB` plus the speaker's gain, a -65 dBFS Gaussian noise floor (so that
  "silence" is not digital zero, as in real recordings), 16-bit PCM WAV.
* **Determinism.** espeak-ng keeps synthesis state in C statics across calls (pitch-flutter
  phase, echo buffer, AGC), so the same text synthesised twice in one process is *not* bit-exact,
  even after ``espeak_Terminate``/``espeak_Initialize``.  The synthesiser therefore runs in a small
  helper process (stdlib only) that initialises espeak once and **forks a child per utterance**:
  every utterance starts from the same pristine state, and the result depends only on
  ``(seed, speaker index, text, repetition)`` — not on what else is generated, in which order, or
  by how many workers.  Where ``os.fork`` does not exist the library is called in-process
  (repeatable across runs of the same script, not across different histories).  If the library
  cannot be loaded, an ``espeak-ng`` executable on ``PATH`` is used instead.

Content classes: the first 12 :data:`DEFAULT_WORDS` are the Mandarin words of DSPSpeech-20 (in
its ``word_id`` order 0-11), the next 25 common words cover all 26 pronunciation classes of paper
C §3.3; :data:`DEFAULT_SENTENCES` are 23 short sentences that contain those words, for CTC
training and keyword query-by-example (paper C §4.4).  Labels: word ``i`` has label ``i``;
sentence ``j`` has label ``j`` (``kind="sentences"``) or ``len(words) + j`` (``kind="both"``).

Speed (in-process post-processing, 2 CPU cores): about 10-15 ms per word utterance, e.g.
6 speakers × 37 words ≈ 2-3 s.

CLI::

    python -m speechret.data.synthetic OUT_DIR --speakers 6 --repetitions 2 --kind both
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import shutil
import struct
import subprocess
import sys
import threading
import time
import wave
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .manifest import Item, Manifest

from speechret.errors import SpeechretError

__all__ = [
    "VOICE",
    "SAMPLE_RATE",
    "DEFAULT_WORDS",
    "DSPSPEECH20_WORDS",
    "DEFAULT_SENTENCES",
    "MALE_VARIANTS",
    "FEMALE_VARIANTS",
    "SynthesisError",
    "SpeakerProfile",
    "EspeakSynth",
    "available_variants",
    "make_speakers",
    "synthesize",
    "generate_corpus",
    "corpus_fingerprint",
    "main",
]

#: espeak-ng voice that reads tone-numbered pinyin.
VOICE = "cmn-latn-pinyin"
#: output sample rate of the corpus
SAMPLE_RATE = 16000
#: peak level of a normalised utterance before the speaker gain, dBFS
TARGET_PEAK_DB = -3.0
GENERATOR_VERSION = 1

#: (text, tone-numbered pinyin); the first 12 are DSPSpeech-20's Mandarin words, word_id 0..11.
DSPSPEECH20_WORDS: list[tuple[str, str]] = [
    ("数字", "shu4 zi4"),
    ("语音", "yu3 yin1"),
    ("语言", "yu3 yan2"),
    ("识别", "shi2 bie2"),
    ("中国", "zhong1 guo2"),
    ("总工", "zong3 gong1"),
    ("北京", "bei3 jing1"),
    ("背景", "bei4 jing3"),
    ("上海", "shang4 hai3"),
    ("商行", "shang1 hang2"),
    ("复旦", "fu4 dan4"),
    ("饭店", "fan4 dian4"),
]
DEFAULT_WORDS: list[tuple[str, str]] = DSPSPEECH20_WORDS + [
    ("你好", "ni3 hao3"),
    ("谢谢", "xie4 xie4"),
    ("再见", "zai4 jian4"),
    ("朋友", "peng2 you3"),
    ("明天", "ming2 tian1"),
    ("老师", "lao3 shi1"),
    ("开门", "kai1 men2"),
    ("请问", "qing3 wen4"),
    ("学校", "xue2 xiao4"),
    ("吃饭", "chi1 fan4"),
    ("热水", "re4 shui3"),
    ("词典", "ci2 dian3"),
    ("安全", "an1 quan2"),
    ("欧洲", "ou1 zhou1"),
    ("儿童", "er2 tong2"),
    ("文件", "wen2 jian4"),
    ("电脑", "dian4 nao3"),
    ("天气", "tian1 qi4"),
    ("时间", "shi2 jian1"),
    ("医院", "yi1 yuan4"),
    ("火车", "huo3 che1"),
    ("飞机", "fei1 ji1"),
    ("音乐", "yin1 yue4"),
    ("银行", "yin2 hang2"),
    ("思考", "si1 kao3"),
]
DEFAULT_SENTENCES: list[tuple[str, str]] = [
    ("我在北京学习语音识别", "wo3 zai4 bei3 jing1 xue2 xi2 yu3 yin1 shi2 bie2"),
    ("上海的天气很好", "shang4 hai3 de5 tian1 qi4 hen3 hao3"),
    ("明天我们去复旦大学", "ming2 tian1 wo3 men5 qu4 fu4 dan4 da4 xue2"),
    ("请问饭店在哪里", "qing3 wen4 fan4 dian4 zai4 na3 li3"),
    ("老师说数字很重要", "lao3 shi1 shuo1 shu4 zi4 hen3 zhong4 yao4"),
    ("中国有很多银行", "zhong1 guo2 you3 hen3 duo1 yin2 hang2"),
    ("你好我是你的朋友", "ni3 hao3 wo3 shi4 ni3 de5 peng2 you3"),
    ("他坐火车去上海", "ta1 zuo4 huo3 che1 qu4 shang4 hai3"),
    ("今天的音乐很好听", "jin1 tian1 de5 yin1 yue4 hen3 hao3 ting1"),
    ("我们在医院门口见面", "wo3 men5 zai4 yi1 yuan4 men2 kou3 jian4 mian4"),
    ("请打开电脑的文件", "qing3 da3 kai1 dian4 nao3 de5 wen2 jian4"),
    ("她在商行工作", "ta1 zai4 shang1 hang2 gong1 zuo4"),
    ("背景声音太大了", "bei4 jing3 sheng1 yin1 tai4 da4 le5"),
    ("吃饭的时间到了", "chi1 fan4 de5 shi2 jian1 dao4 le5"),
    ("语言是人类的工具", "yu3 yan2 shi4 ren2 lei4 de5 gong1 ju4"),
    ("欧洲的儿童喜欢音乐", "ou1 zhou1 de5 er2 tong2 xi3 huan1 yin1 yue4"),
    ("飞机明天早上起飞", "fei1 ji1 ming2 tian1 zao3 shang4 qi3 fei1"),
    ("谢谢你的帮助再见", "xie4 xie4 ni3 de5 bang1 zhu4 zai4 jian4"),
    ("总工在学校开会", "zong3 gong1 zai4 xue2 xiao4 kai1 hui4"),
    ("热水在厨房里", "re4 shui3 zai4 chu2 fang2 li3"),
    ("词典放在桌子上", "ci2 dian3 fang4 zai4 zhuo1 zi5 shang4"),
    ("安全第一", "an1 quan2 di4 yi1"),
    ("我们一起思考这个问题", "wo3 men5 yi4 qi3 si1 kao3 zhe4 ge5 wen4 ti2"),
]

#: voice variants used for speakers (filtered by what the installed espeak-ng-data provides)
MALE_VARIANTS: tuple[str, ...] = ("m1", "m3", "m2", "m4", "m6", "m7", "Andy", "john", "robert", "klatt", "klatt3", "david")
FEMALE_VARIANTS: tuple[str, ...] = ("f2", "f1", "f4", "f3", "f5", "linda", "steph", "Annie")


class SynthesisError(SpeechretError, RuntimeError):
    """espeak-ng could not be loaded or failed on an utterance (the message says which)."""


# --------------------------------------------------------------------------------------------
# espeak-ng access
# --------------------------------------------------------------------------------------------

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
        import ctypes

        self.ct = ctypes
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
            import io

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


# --------------------------------------------------------------------------------------------
# speakers and utterances
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeakerProfile:
    """A synthetic speaker: espeak voice variant + prosody + recording gain."""

    name: str
    variant: str
    gender: str
    pitch: int  # espeak pitch 0..99 (50 = voice default)
    range: int  # espeak pitch range 0..99 (50 = default)
    rate: int  # words per minute (espeak default 175)
    gain_db: float  # added to TARGET_PEAK_DB

    @property
    def voice(self) -> str:
        return f"{VOICE}+{self.variant}"


def make_speakers(n_speakers: int, seed: int = 0) -> list[SpeakerProfile]:
    """``n_speakers`` distinct speakers, alternating male/female variants, prosody from ``seed``.

    Speaker ``i`` depends only on ``(seed, i)`` (and the installed variants), so a corpus with
    more speakers extends one with fewer.
    """
    if n_speakers < 1:
        raise ValueError(f"n_speakers must be >= 1, got {n_speakers}")
    have = set(available_variants())
    male = [v for v in MALE_VARIANTS if v in have] or ["m1"]
    female = [v for v in FEMALE_VARIANTS if v in have] or ["f1"]
    base = np.random.default_rng([seed, 0x5EED])
    male = [male[i] for i in base.permutation(len(male))]
    female = [female[i] for i in base.permutation(len(female))]
    out = []
    for i in range(n_speakers):
        g = "m" if i % 2 == 0 else "f"
        pool = male if g == "m" else female
        variant = pool[(i // 2) % len(pool)]
        cycle = (i // 2) // len(pool)  # >0 when variants are reused: push prosody apart
        rng = np.random.default_rng([seed, 1, i])
        pitch = int(rng.integers(35, 66)) + (cycle % 2) * (-12 if g == "m" else 12)
        out.append(
            SpeakerProfile(
                name=f"syn{i:02d}",
                variant=variant,
                gender=g,
                pitch=int(np.clip(pitch, 5, 95)),
                range=int(rng.integers(30, 81)),
                rate=int(rng.integers(135, 191)) + cycle * 10,
                gain_db=float(np.round(rng.uniform(-6.0, 0.0), 2)),
            )
        )
    return out


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr_in, sr_out)
    return resample_poly(x, sr_out // g, sr_in // g).astype(np.float32)


def _trim(x: np.ndarray, sr: int, threshold_db: float = -40.0) -> np.ndarray:
    """Cut leading/trailing parts whose 10 ms RMS is ``threshold_db`` below the loudest frame."""
    hop = max(1, sr // 100)
    n = len(x) // hop
    if n < 2:
        return x
    frames = x[: n * hop].reshape(n, hop)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-12
    db = 20 * np.log10(rms / rms.max())
    active = np.flatnonzero(db > threshold_db)
    if active.size == 0:
        return x
    start = max(0, (active[0] - 1) * hop)  # keep one frame of onset
    end = min(len(x), (active[-1] + 2) * hop)
    return x[start:end]


def _content_key(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def synthesize(
    pinyin: str,
    speaker: SpeakerProfile,
    repetition: int = 1,
    *,
    seed: int = 0,
    engine: EspeakSynth | None = None,
    sample_rate: int = SAMPLE_RATE,
    noise_floor_db: float | None = -65.0,
    jitter: bool = True,
) -> np.ndarray:
    """One utterance: float32 mono in [-1, 1] at ``sample_rate``, ready to save as 16-bit PCM.

    Deterministic in ``(pinyin, speaker, repetition, seed)``; ``jitter`` varies rate, pitch,
    range, gain and silences per repetition (module docstring).
    """
    text = _espeak_text(pinyin)
    rng = np.random.default_rng([seed, 2, _content_key(speaker.name), _content_key(text), int(repetition) & 0xFFFF])
    if jitter:
        rate = int(round(speaker.rate * (1.0 + rng.uniform(-0.08, 0.08))))
        pitch = int(np.clip(speaker.pitch + rng.integers(-4, 5), 0, 99))
        rng_range = int(np.clip(speaker.range + rng.integers(-6, 7), 0, 99))
        gain_db = speaker.gain_db + rng.uniform(-1.0, 1.0)
        lead, trail = rng.uniform(0.06, 0.20), rng.uniform(0.06, 0.20)
    else:
        rate, pitch, rng_range, gain_db, lead, trail = speaker.rate, speaker.pitch, speaker.range, speaker.gain_db, 0.1, 0.1
    espeak_seed = int(rng.integers(1, 2**31 - 1))
    own = engine is None
    eng = engine or EspeakSynth(workers=1)
    try:
        samples, sr = eng.synth(text, speaker.voice, rate=rate, pitch=pitch, range_=rng_range, seed=espeak_seed)
    finally:
        if own:
            eng.close()
    x = samples.astype(np.float32) / 32768.0
    x = _resample(x, sr, sample_rate)
    x = _trim(x, sample_rate)
    peak = float(np.max(np.abs(x)))
    if peak <= 0:
        raise SynthesisError(f"espeak-ng produced silence for {text!r} ({speaker.voice})")
    x = x * (10 ** ((TARGET_PEAK_DB + gain_db) / 20) / peak)
    x = np.concatenate(
        [np.zeros(int(lead * sample_rate), np.float32), x.astype(np.float32), np.zeros(int(trail * sample_rate), np.float32)]
    )
    if noise_floor_db is not None:
        x = x + rng.standard_normal(len(x)).astype(np.float32) * np.float32(10 ** (noise_floor_db / 20))
    return np.clip(x, -1.0, 32767 / 32768).astype(np.float32)


def _espeak_text(pinyin: str) -> str:
    """Pinyin as espeak's ``cmn-latn-pinyin`` wants it: lower case, ü → v, one space between."""
    s = pinyin.lower().replace("ü", "v").replace("u:", "v")
    return " ".join(s.split())


def _write_wav16(path: Path, x: np.ndarray, sr: int) -> None:
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")
    tmp = path.with_name(path.name + ".tmp")
    with wave.open(str(tmp), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(sr)
        wf.writeframes(pcm.tobytes())
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# corpus generation
# --------------------------------------------------------------------------------------------


def _as_entries(entries: Iterable[str | tuple[str, str] | Sequence[str]] | None, default: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if entries is None:
        return list(default)
    out: list[tuple[str, str]] = []
    for e in entries:
        if isinstance(e, str):
            from .pronunciation import text_to_pinyin

            py = text_to_pinyin(e)
            if not py:
                raise ValueError(f"{e!r} has no Chinese characters to read; give (text, pinyin) pairs")
            out.append((e, py))
        else:
            text, py = e[0], e[1]
            out.append((str(text), " ".join(str(py).split())))
    seen: set[str] = set()
    for text, _ in out:
        if text in seen:
            raise ValueError(f"duplicate entry {text!r}: each text is one content class")
        seen.add(text)
    return out


PARAMS_FILE = "synthetic.json"


def generate_corpus(
    out_dir: str | os.PathLike[str],
    n_speakers: int = 6,
    words: Iterable[str | tuple[str, str]] | None = None,
    sentences: Iterable[str | tuple[str, str]] | None = None,
    repetitions: int = 1,
    seed: int = 0,
    kind: str = "words",
    *,
    sample_rate: int = SAMPLE_RATE,
    noise_floor_db: float | None = -65.0,
    workers: int | None = None,
    overwrite: bool = False,
    verbose: bool = False,
) -> Manifest:
    """Generate (or reuse) the synthetic corpus in ``out_dir``; returns its manifest.

    Writes ``out_dir/wav/<speaker>/<id>.wav`` (16-bit PCM, ``sample_rate``),
    ``out_dir/manifest.csv`` (every :class:`~speechret.data.manifest.Item` field; ``label`` =
    word index, ``pinyin`` tone-numbered, ``language`` ``zh``, ``repetition`` 1..R, ``split``
    empty) and ``out_dir/synthetic.json`` (the parameters).  When the manifest exists with the same
    parameters and all its files, nothing is synthesised (idempotent); with other parameters the
    previous ``wav/`` tree is replaced.

    Args:
        n_speakers: number of synthetic speakers (:func:`make_speakers`).
        words: isolated words: Chinese strings (pinyin from pypinyin) or ``(text, pinyin)``
            pairs; default :data:`DEFAULT_WORDS` (37 words, the first 12 = DSPSpeech-20's).
        sentences: likewise, default :data:`DEFAULT_SENTENCES` (23 sentences).
        repetitions: recordings per (speaker, content), each slightly different.
        kind: ``"words"``, ``"sentences"`` or ``"both"`` (sentence labels follow the words').
        ids: ``<speaker>_w<label>_r<rep>`` for words, ``<speaker>_s<index>_r<rep>`` for
            sentences.
    """
    if kind not in ("words", "sentences", "both"):
        raise ValueError(f"kind must be 'words', 'sentences' or 'both', not {kind!r}")
    if repetitions < 1:
        raise ValueError(f"repetitions must be >= 1, got {repetitions}")
    out = Path(out_dir)
    word_list = _as_entries(words, DEFAULT_WORDS) if kind in ("words", "both") else []
    sent_list = _as_entries(sentences, DEFAULT_SENTENCES) if kind in ("sentences", "both") else []
    speakers = make_speakers(n_speakers, seed)
    params = {
        "generator": "speechret.data.synthetic",
        "version": GENERATOR_VERSION,
        "voice": VOICE,
        "n_speakers": n_speakers,
        "repetitions": repetitions,
        "seed": seed,
        "kind": kind,
        "sample_rate": sample_rate,
        "noise_floor_db": noise_floor_db,
        "words": word_list,
        "sentences": sent_list,
        "speakers": [asdict(s) for s in speakers],
    }
    params_json = json.dumps(params, ensure_ascii=False, indent=1, sort_keys=True)
    man_path = out / "manifest.csv"
    par_path = out / PARAMS_FILE
    if not overwrite and man_path.is_file() and par_path.is_file():
        try:
            same = json.loads(par_path.read_text(encoding="utf-8")) == json.loads(params_json)
        except (OSError, json.JSONDecodeError):
            same = False
        if same:
            m = Manifest.from_csv(man_path)
            if all(os.path.isfile(it.path) for it in m):
                if verbose:
                    print(f"synthetic corpus up to date: {man_path}", file=sys.stderr)
                return m
    # we own the folder if it holds our parameter file: clear stale audio
    if par_path.is_file() and (out / "wav").is_dir():
        shutil.rmtree(out / "wav")
    for p in (man_path, par_path):
        if p.exists():
            p.unlink()

    jobs: list[tuple[SpeakerProfile, str, str, int, str, int]] = []  # spk, text, pinyin, label, id, rep
    n_words = len(word_list)
    label_offset = n_words if kind == "both" else 0
    for spk in speakers:
        for rep in range(1, repetitions + 1):
            for i, (text, py) in enumerate(word_list):
                jobs.append((spk, text, py, i, f"{spk.name}_w{i:03d}_r{rep:02d}", rep))
            for j, (text, py) in enumerate(sent_list):
                jobs.append((spk, text, py, label_offset + j, f"{spk.name}_s{j:03d}_r{rep:02d}", rep))
    for spk in speakers:
        (out / "wav" / spk.name).mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    with EspeakSynth(workers=workers) as eng:

        def run(job: tuple[SpeakerProfile, str, str, int, str, int]) -> Item:
            spk, text, py, label, uid, rep = job
            x = synthesize(py, spk, rep, seed=seed, engine=eng, sample_rate=sample_rate, noise_floor_db=noise_floor_db)
            path = out / "wav" / spk.name / f"{uid}.wav"
            _write_wav16(path, x, sample_rate)
            return Item(
                id=uid,
                path=os.path.abspath(path),
                speaker=spk.name,
                label=label,
                text=text,
                pinyin=py,
                language="zh",
                duration=len(x) / sample_rate,
                split="",
                repetition=rep,
            )

        with ThreadPoolExecutor(max_workers=eng.workers) as ex:
            items = list(ex.map(run, jobs))
    manifest = Manifest(items, root=out)
    manifest.to_csv(man_path)
    tmp = par_path.with_name(par_path.name + ".tmp")
    tmp.write_text(params_json, encoding="utf-8")
    os.replace(tmp, par_path)
    if verbose:
        dt = time.perf_counter() - t0
        print(f"synthesised {len(items)} utterances in {dt:.1f} s ({eng.backend}) → {man_path}", file=sys.stderr)
    return Manifest.from_csv(man_path)


def corpus_fingerprint(manifest: Manifest) -> str:
    """SHA-256 over the audio bytes of a manifest's files (reproducibility checks)."""
    h = hashlib.sha256()
    for it in manifest:
        h.update(it.id.encode())
        h.update(Path(it.path).read_bytes())
    return h.hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m speechret.data.synthetic",
        description="Generate the built-in synthetic Mandarin corpus (espeak-ng, 16 kHz WAV + manifest.csv).",
    )
    ap.add_argument("out_dir", help="output folder")
    ap.add_argument("--speakers", type=int, default=6, help="number of synthetic speakers (default 6)")
    ap.add_argument("--repetitions", type=int, default=1, help="repetitions per speaker and content (default 1)")
    ap.add_argument("--kind", choices=("words", "sentences", "both"), default="words")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--words", default=None, help="comma-separated Chinese words (default: built-in 37)")
    ap.add_argument("--sentences", default=None, help="comma-separated Chinese sentences (default: built-in 23)")
    ap.add_argument("--sample-rate", type=int, default=SAMPLE_RATE)
    ap.add_argument("--workers", type=int, default=None, help="synthesis processes (default min(4, CPUs))")
    ap.add_argument("--overwrite", action="store_true", help="regenerate even if up to date")
    args = ap.parse_args(argv)

    def split(s: str | None) -> list[str] | None:
        return [w.strip() for w in s.replace("，", ",").split(",") if w.strip()] if s else None

    try:
        m = generate_corpus(
            args.out_dir,
            n_speakers=args.speakers,
            words=split(args.words),
            sentences=split(args.sentences),
            repetitions=args.repetitions,
            seed=args.seed,
            kind=args.kind,
            sample_rate=args.sample_rate,
            workers=args.workers,
            overwrite=args.overwrite,
            verbose=True,
        )
    except (SynthesisError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    s = m.summary()
    s.pop("label_counts")
    print(json.dumps(s, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
