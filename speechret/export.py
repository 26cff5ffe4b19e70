"""Export of the hasher's front half (audio waveform -> code bits) to TorchScript.

:func:`export_hasher` turns a checkpoint into one self-contained TorchScript file that needs only
``torch`` to run (no Lightning, Hydra, FAISS or speechret): :func:`load_exported` reads it back
(this module imports nothing but ``torch`` at the top). The file holds exactly the path
:class:`speechret.hashing.hasher.Hasher` runs for one clip:

1. the run's front end (``conf/frontend``, :class:`speechret.frontend.SilenceTrim`): its span
   detection :meth:`SilenceTrim.spans` is traced, and the scripted wrapper keeps
   ``wave[start:end]`` -- for a single clip exactly what :meth:`SilenceTrim.forward` returns
   (the kept span moved to the start, nothing after it); without a front end the whole clip;
2. the feature extractor (``cfg.features``) and the network (``cfg.model``), traced with
   ``torch.jit.trace`` on one representative clip. The features of speechret are batched
   tensor programs whose shapes derive from the input's (the tracer records them symbolically),
   so one trace serves every length; :func:`export_hasher` checks this on clips of other lengths
   and refuses to write a file that differs from the Hasher on any of them;
3. the method's code construction: ``speechret`` (:func:`speechret.hashing.hash_sign`,
   ``u > 0``) and ``paper_a`` (:func:`speechret.hashing.hash_paper_a`, eq. 7) are traced as they
   are; ``paper_b`` is eq. (11)-(15) with the row-mean threshold of
   :func:`speechret.hashing.hash_paper_b` (its default, the one indexing and search use), written
   with ``one_hot`` because the tracer cannot record that function's boolean ``scatter_``.

4. a run's test-time views (``conf/views``, :class:`speechret.frontend.SpeedViews`): the scripted
   wrapper plays the kept span at each speed with ``torchaudio.functional.resample`` and the same
   integer ratios as :func:`speechret.augment.speed_change` (scripted, so each view's length
   follows the clip's), pads the views into one batch, and the traced core runs them together and
   merges their outputs with :meth:`speechret.hashing.HashMethod.merge_views` before the code
   construction -- the code the library and queries get from :class:`~speechret.hashing.hasher.Hasher`.

Paper C (CTC, variable-length grouped codes) is not exportable this way: its code construction
(:func:`speechret.hashing.segments_paper_c`) makes a data-dependent number of segments
(``nonzero`` / ``bincount`` sized by ``int(seg[-1]) + 1``) and its MFCC-sequence features take
their frame count from ``.item()``; a trace freezes both to the example clip. Exporting it would
need a TorchScript re-statement of the segment merging -- a second implementation of eq. (10)
that could drift from the one indexing uses -- so :func:`export_hasher` refuses variable-length
methods with a :class:`~speechret.errors.ConfigError`.

The exported module codes one clip per call (batch of one): ``forward(wave (T,) float32) ->
bool (bits,)``; :class:`ExportedHasher` loops over a list. Input: mono float32 at the model's
sample rate (``ExportedHasher.sample_rate``), at least ``min_samples`` long (tracing fixes
the front end's branch for clips shorter than one analysis frame); resampling and the audio
policy (:class:`speechret.audio.AudioPolicy`) stay with the caller, as with ``Hasher.codes``.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ExportedHasher", "export_hasher", "load_exported"]

FORMAT = "speechret-exported-hasher/1"
#: name of the JSON metadata stored inside the TorchScript archive
META_FILE = "speechret.json"


# ------------------------------------------------------------------------------ traced parts
class _Spans(nn.Module):
    """``(start, end)`` of the span :class:`~speechret.frontend.SilenceTrim` keeps, one clip."""

    def __init__(self, trim: nn.Module) -> None:
        super().__init__()
        self.trim = trim

    def forward(self, wave: Tensor) -> tuple[Tensor, Tensor]:
        lengths = torch.full((1,), wave.shape[1], dtype=torch.long, device=wave.device)
        return self.trim.spans(wave, lengths)


class _WholeClip(nn.Module):
    """No front end: the whole clip."""

    def forward(self, wave: Tensor) -> tuple[Tensor, Tensor]:
        return (torch.zeros(1, dtype=torch.long, device=wave.device),
                torch.full((1,), wave.shape[1], dtype=torch.long, device=wave.device))


def _paper_b_code(output: Any) -> Tensor:
    """Paper B eq. (11)-(15), as :func:`speechret.hashing.hash_paper_b` with its default row-mean
    threshold: ``one_hot(argmax logits) || tanh(omega) >= row mean`` (traceable form)."""
    w, z = output.hash_features.float(), output.logits.float()
    h1 = nn.functional.one_hot(z.argmax(dim=1), z.shape[1]).bool()
    return torch.cat([h1, w >= w.mean(dim=-1, keepdim=True)], dim=1)


def _code_function(method: str):
    from speechret.hashing import hash_paper_a, hash_sign

    return {"speechret": lambda out: hash_sign(out.hash_features),
            "paper_a": lambda out: hash_paper_a(out.hash_features),
            "paper_b": _paper_b_code}.get(method)


class _OneView(nn.Module):
    """No test-time views: the clip ``(1, T)`` and its length."""

    def forward(self, wave: Tensor) -> tuple[Tensor, Tensor]:
        return wave, torch.full((1,), wave.shape[1], dtype=torch.long, device=wave.device)


class _Core(nn.Module):
    """Features -> network -> (merge of an item's views) -> code bits of one clip's views
    ``(V, T)`` with their lengths ``(V,)``; one view is ``V = 1``."""

    def __init__(self, features: nn.Module, net: nn.Module, code, merge) -> None:
        super().__init__()
        self.features, self.net, self.code, self.merge = features, net, code, merge

    def forward(self, wave: Tensor, lengths: Tensor) -> Tensor:
        feats, flen = self.features(wave, lengths)
        return self.code(self.merge(self.net(feats, flen)))


class _Front(nn.Module):
    """The scripted wrapper: checks the input, keeps the front end's span, makes the views and runs
    the traced core on them."""

    def __init__(self, spans: nn.Module, views: nn.Module, core: nn.Module, min_samples: int) -> None:
        super().__init__()
        self.spans, self.views, self.core, self.min_samples = spans, views, core, min_samples

    def forward(self, wave: Tensor) -> Tensor:
        if wave.dim() != 1:
            raise ValueError("expected one mono waveform of shape (T,)")
        if wave.shape[0] < self.min_samples:
            raise ValueError("waveform shorter than the exported hasher's min_samples")
        x = wave.to(torch.float32).reshape(1, -1)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("waveform has non-finite samples")
        span = self.spans(x)
        start = int(span[0][0].item())
        end = int(span[1][0].item())
        views, lengths = self.views(x[:, start:end])
        return self.core(views, lengths)[0]


# ------------------------------------------------------------------------------ export
def _example_clip(n: int, sample_rate: int, seed: int) -> Tensor:
    """A deterministic voiced-speech-like clip (harmonics of a gliding f0 under a syllable
    envelope) with low-level noise before and after it, so the front end trims both ends."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    f0 = 100 + 120 * torch.rand((), generator=g, dtype=torch.float64) + 25 * torch.sin(2 * math.pi * 1.3 * t)
    ph = 2 * math.pi * torch.cumsum(f0, 0) / sample_rate
    x = sum(torch.sin(k * ph) / k for k in range(1, 7)) * (0.6 + 0.4 * torch.sin(2 * math.pi * 4 * t))
    x = 0.4 * x / x.abs().max()
    lead, tail = int(0.15 * n * float(torch.rand((), generator=g))), int(0.15 * n * float(torch.rand((), generator=g)))
    x[:lead] = 0.0
    if tail:
        x[n - tail:] = 0.0
    x = x + 1e-4 * torch.randn(n, generator=g, dtype=torch.float64)
    return x.float()


def export_hasher(ckpt_path: str | os.PathLike, out_path: str | os.PathLike, *, example_seconds: float = 1.5,
                  check_seconds: Sequence[float] = (0.3, 0.8, 2.2, 3.9, 6.3)) -> Path:
    """Write the TorchScript front half of ``ckpt_path`` (see the module docstring) to
    ``out_path`` and return it. The trace uses a clip of ``example_seconds``; the written module
    is then checked bit for bit against :class:`~speechret.hashing.hasher.Hasher` on clips of
    ``check_seconds`` (a mismatch raises :class:`~speechret.errors.SpeechretError` and nothing is
    written). Variable-length methods (paper C) raise :class:`~speechret.errors.ConfigError`."""
    import numpy as np

    from speechret.errors import ConfigError, SpeechretError
    from speechret.hashing.hasher import Hasher
    from speechret.library.store import file_sha256

    hasher = Hasher.from_checkpoint(ckpt_path, device="cpu")
    method = hasher.method
    code = _code_function(method)
    if hasher.hashing.variable_length or code is None:
        raise ConfigError(f"ckpt_path: {ckpt_path} makes {method} codes, which export_hasher cannot trace "
                          f"(variable-length grouped codes: see speechret.export); export a speechret, paper_a "
                          f"or paper_b model")
    sr = hasher.sample_rate
    trim = hasher.frontend
    spans = _WholeClip() if trim is None else _Spans(trim)
    min_samples = 1 if trim is None else int(getattr(trim, "frame", 1)) + 1
    # the network itself: HashingModule.forward is ``self.net(features, lengths)``, and a
    # LightningModule cannot be traced outside a Trainer
    n_views = hasher.n_views
    views = _OneView() if hasher.views is None else hasher.views.clip_views()
    core = _Core(hasher.features, hasher.module.net, code,
                 lambda out: hasher.hashing.merge_views(out, n_views)).eval()
    example = _example_clip(int(round(example_seconds * sr)), sr, seed=0)[None]
    with torch.no_grad(), warnings.catch_warnings():
        # TracerWarnings on shape arithmetic: checked below instead; torch >= 2.9 marks TorchScript
        # deprecated (FutureWarning; torch.export would need the trim's data-dependent span as an
        # unbacked size, not attempted)
        warnings.simplefilter("ignore")
        traced_spans = torch.jit.trace(spans.eval(), example, check_trace=False)
        s, e = traced_spans(example)
        scripted_views = torch.jit.script(views)
        traced_core = torch.jit.trace(core, scripted_views(example[:, int(s[0]):int(e[0])]), check_trace=False)
        front = torch.jit.script(_Front(traced_spans, scripted_views, traced_core, min_samples))
    clips = [_example_clip(int(round(sec * sr)), sr, seed=i + 1) for i, sec in enumerate(check_seconds)]
    want = np.asarray(hasher.codes_of_waves([c.numpy() for c in clips]))
    with torch.no_grad():
        got = np.stack([front(c).numpy() for c in clips])
    bad = [f"{sec:g} s" for sec, a, b in zip(check_seconds, got, want) if not np.array_equal(a, b)]
    if bad:
        raise SpeechretError(f"export_hasher: the traced {method} hasher of {ckpt_path} differs from the Hasher on "
                             f"clips of {', '.join(bad)}; not written")
    cfg = hasher.config or {}
    meta = {"format": FORMAT, "method": method, "code_bits": int(want.shape[1]), "sample_rate": sr,
            "n_classes": int(hasher.n_classes), "category_bits": int(hasher.hashing.category_bits),
            "min_samples": min_samples, "frontend": cfg.get("frontend"), "features": cfg.get("features"),
            "views": None if hasher.views is None else hasher.views.factors,
            "checkpoint_name": Path(ckpt_path).name, "checkpoint_sha256": file_sha256(ckpt_path),
            "traced_with_samples": int(example.shape[1]), "checked_seconds": list(check_seconds),
            "torch": torch.__version__}
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(front, str(out), _extra_files={META_FILE: json.dumps(meta, default=str)})
    return out


# ------------------------------------------------------------------------------ loading
class ExportedHasher:
    """A loaded export: :meth:`codes` of waveforms at :attr:`sample_rate` (needs only torch)."""

    def __init__(self, module: torch.jit.ScriptModule, metadata: dict[str, Any]) -> None:
        self.module = module.eval()
        self.metadata = metadata
        self.method: str = metadata["method"]
        self.code_bits: int = int(metadata["code_bits"])
        self.sample_rate: int = int(metadata["sample_rate"])
        self.min_samples: int = int(metadata.get("min_samples", 1))

    def __call__(self, wave: Any) -> Tensor:
        """Code bits ``bool (code_bits,)`` of one mono waveform ``(T,)``."""
        x = torch.as_tensor(wave)
        if x.dim() != 1:
            raise ValueError(f"wave: expected a mono waveform (T,), got shape {tuple(x.shape)}")
        if x.shape[0] < self.min_samples:
            raise ValueError(f"wave: {x.shape[0]} samples, the exported hasher needs at least {self.min_samples}")
        with torch.no_grad():
            return self.module(x.to(torch.float32))

    def codes(self, waves: Iterable[Any]) -> Tensor:
        """Code bits ``bool (N, code_bits)`` of a list of mono waveforms (one clip per call)."""
        out = [self(w) for w in waves]
        return torch.stack(out) if out else torch.zeros((0, self.code_bits), dtype=torch.bool)

    def __repr__(self) -> str:
        return (f"ExportedHasher({self.method}, {self.code_bits} bits, {self.sample_rate} Hz, "
                f"from {self.metadata.get('checkpoint_name')})")


def load_exported(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> ExportedHasher:
    """Load a file written by :func:`export_hasher` (``torch.jit.load``; nothing but torch)."""
    extra = {META_FILE: ""}
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"exported hasher not found: {p}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice (torch >= 2.9)
        module = torch.jit.load(str(p), map_location=map_location, _extra_files=extra)
    try:
        meta = json.loads(extra[META_FILE] or "{}")
    except ValueError as exc:
        raise ValueError(f"{p}: unreadable {META_FILE} metadata ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise ValueError(f"{p}: not a speechret exported hasher (format {meta.get('format')!r}, expected {FORMAT!r})")
    return ExportedHasher(module, meta)
