"""Classic query-by-example baselines, run side by side with the deep hashes.

Neither baseline hashes anything: they are the reference points the evaluation protocols rank
with the same queries, the same database and the same metrics as the deep-hashing systems, to
show what the learned (and encryptable) codes gain or lose against uncompressed matching.
Both implement the duck-typed *retrieval system* interface of the protocols::

    system.name                                   # "mfcc_dtw" / "asr_edit"
    reps = system.encode(waves)                   # one representation per mono 16 kHz waveform
    D = system.distances(queries, database, mode) # (Q, N) float64, lower = more similar

``mode="full"`` compares whole utterances (full-speech retrieval); ``mode="keyword"`` asks
whether the query (one word) occurs *inside* the database utterance (keyword retrieval), i.e.
the best match of the whole query against any stretch of the item.  The distances themselves
(DTW, subsequence DTW, Levenshtein, Sellers) are :mod:`speechret.evaluate.sequence_distances`.

:class:`DTWSystem` — MFCC + dynamic time warping, the template-matching QbE baseline
    Features: :class:`speechret.features.MFCCSequence` (39-d MFCC + Δ + ΔΔ with per-utterance
    CMVN — the front end of paper C's BiLSTM-over-MFCC baseline, §5.1), kept per utterance as
    ``(frames, 39)`` float32; symmetric DTW / ``(n + m)`` for full speech, path-normalized
    subsequence DTW for keywords; frame distance ``1 − cos`` (default) or Euclidean.

:class:`ASRSystem` — recognise, then match the text: paper C §5.5's "ASR-based" comparison
    ([16–17]: "performing recognition first and then matching on the recognized text"; for
    fairness the paper recognises with its own pronunciation model).  Here the recogniser is the
    trained paper-C network of a :class:`speechret.hashing.hasher.Hasher` (``Hasher.outputs`` → per-frame
    pronunciation scores → the module's CTC decoding, greedy by default or prefix beam search
    with ``decoding: beam``, "other"/blank dropped), so every utterance becomes a sequence of
    pronunciation labels 0..25, compared by normalized Levenshtein distance (full) or Sellers'
    substring distance (keyword).

Construction: each baseline is a Hydra node, ``conf/baseline/<name>.yaml`` (``_target_``
:class:`DTWSystem` / :func:`asr_baseline`), mounted at ``evaluate.baseline_systems.<name>`` by
``conf/evaluate.yaml``; ``evaluate.baselines=[dtw,asr]`` picks them by name and
:func:`instantiate_baselines` builds them with ``hydra.utils.instantiate``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from speechret.errors import ConfigError
from speechret.evaluate.sequence_distances import (
    _metric_code,
    dtw_distance,
    levenshtein,
    pairwise_dtw,
    pairwise_edit_distance,
    subsequence_dtw_distance,
    substring_edit_distance,
)

__all__ = [
    "DTWSystem",
    "ASRSystem",
    "asr_baseline",
    "instantiate_baselines",
    "dtw_distance",
    "subsequence_dtw_distance",
    "pairwise_dtw",
    "levenshtein",
    "substring_edit_distance",
    "pairwise_edit_distance",
]


# ----------------------------------------------------------------------------------------------
# retrieval systems
# ----------------------------------------------------------------------------------------------


class DTWSystem:
    """MFCC + DTW query-by-example baseline.

    Args:
        metric: frame distance, ``"cosine"`` (1 − cos) or ``"euclidean"``.
        band: Sakoe–Chiba band of the full mode as a fraction of the longer sequence (None: none).
        batch_size: waveforms per feature batch.
        device: torch device of the feature extractor.
        name: system name in reports.
        features: a ready feature extractor (``nn.Module`` ``(wave, lengths) -> (feats, flen)``);
            default :class:`speechret.features.MFCCSequence` built with ``feature_kwargs``.
        **feature_kwargs: constructor arguments of ``MFCCSequence`` (``sample_rate``, ``n_mfcc``,
            ``cmvn``, ...).
    """

    def __init__(self, metric: str = "cosine", band: float | None = None, batch_size: int = 64,
                 device: str = "cpu", name: str = "mfcc_dtw", features: Any = None,
                 **feature_kwargs: Any) -> None:
        import torch

        from speechret.features import build_features

        _metric_code(metric)
        if band is not None and band < 0:
            raise ValueError(f"band must be a non-negative fraction or None, not {band}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        self.name = name
        self.metric = metric
        self.band = band
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        if features is None:
            features = build_features("mfcc_seq", **feature_kwargs)
        elif feature_kwargs:
            raise ValueError("pass either a features module or MFCCSequence keyword arguments, not both")
        self.features = features.to(self.device).eval()

    def encode(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``(frames, 39)`` float32 MFCC sequence of each waveform (batched, zero-padded)."""
        import torch

        out: list[np.ndarray] = []
        waves = [np.asarray(w, dtype=np.float32).reshape(-1) for w in waves]
        for start in range(0, len(waves), self.batch_size):
            chunk = waves[start : start + self.batch_size]
            lengths = np.array([len(w) for w in chunk], dtype=np.int64)
            batch = np.zeros((len(chunk), max(1, int(lengths.max()))), dtype=np.float32)
            for i, w in enumerate(chunk):
                batch[i, : len(w)] = w
            with torch.no_grad():
                feats, flen = self.features(torch.from_numpy(batch).to(self.device),
                                            torch.from_numpy(lengths).to(self.device))
            feats = feats.float().cpu().numpy()
            flen = flen.cpu().numpy()
            for i in range(len(chunk)):
                n = int(flen[i]) if lengths[i] > 0 else 0
                out.append(np.ascontiguousarray(feats[i, :n], dtype=np.float32))
        return out

    def distances(self, queries: Sequence[np.ndarray], database: Sequence[np.ndarray],
                  mode: str = "full") -> np.ndarray:
        """(Q, N) DTW distances: full symmetric DTW / (n + m), or subsequence DTW for keywords."""
        return pairwise_dtw(queries, database, mode=mode, metric=self.metric, band=self.band)

    def __repr__(self) -> str:
        return f"DTWSystem(name={self.name!r}, metric={self.metric!r}, band={self.band!r})"


class ASRSystem:
    """Recognise-then-match baseline (paper C §5.5 "ASR-based").

    Args:
        hasher: a :class:`speechret.hashing.hasher.Hasher` of a trained paper-C (CTC) checkpoint, or None
            to match label sequences given directly to :meth:`distances`.
        name: system name in reports.
    """

    def __init__(self, hasher: Any = None, name: str = "asr_edit") -> None:
        self.hasher = hasher
        self.name = name

    @classmethod
    def from_checkpoint(cls, path: str, device: str = "cpu", batch_size: int = 32, **kwargs: Any) -> "ASRSystem":
        from speechret.hashing.hasher import Hasher

        return cls(Hasher.from_checkpoint(path, device=device, batch_size=batch_size), **kwargs)

    def _dropped(self) -> set[int]:
        hp = getattr(self.hasher.module, "hparams", None)
        get = (lambda k, d: hp.get(k, d)) if isinstance(hp, dict) else (lambda k, d: getattr(hp, k, d))
        return {int(get("blank", 26)), int(get("other_index", 26))}

    def encode(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Greedy CTC transcription of each waveform: int64 pronunciation labels, blank and
        "other" removed."""
        if self.hasher is None:
            raise ValueError("ASRSystem without a hasher can only compare given label sequences")
        drop = self._dropped()
        if not hasattr(self.hasher.module, "decode"):
            raise TypeError("the hasher's module has no CTC decode(): not a paper-C checkpoint")
        waves = [np.asarray(w, dtype=np.float32).reshape(-1) for w in waves]
        bs = max(1, int(getattr(self.hasher, "batch_size", 32)))
        out: list[np.ndarray] = []
        for start in range(0, len(waves), bs):
            res = self.hasher.outputs(waves[start : start + bs])
            for seq in self.hasher.module.decode(res):
                out.append(np.array([int(x) for x in seq if int(x) not in drop], dtype=np.int64))
        return out

    def distances(self, queries: Sequence[Sequence[int]], database: Sequence[Sequence[int]],
                  mode: str = "full") -> np.ndarray:
        """(Q, N): normalized Levenshtein (full) or Sellers substring distance (keyword)."""
        return pairwise_edit_distance(queries, database, mode=mode)

    def __repr__(self) -> str:
        return f"ASRSystem(name={self.name!r}, hasher={'set' if self.hasher is not None else None})"


# ----------------------------------------------------------------------------------------------
# construction from the config (conf/baseline/<name>.yaml)
# ----------------------------------------------------------------------------------------------

#: the key of a baseline node that the runner fills with the evaluated checkpoint's HashSystem
MAIN_KEY = "main"


def asr_baseline(ckpt: str | None = None, main: Any = None, device: str = "cpu", name: str = "asr_edit") -> ASRSystem:
    """The ``asr`` baseline (``conf/baseline/asr.yaml``): :class:`ASRSystem` on the paper-C CTC
    model of ``ckpt`` (``evaluate.asr_ckpt``) or, without one, of ``main`` — the evaluated
    checkpoint's :class:`~speechret.evaluate.systems.HashSystem` — when that is a paper-C model."""
    from speechret.models.hash_modules import CTCHashModule

    def is_ctc(h: Any) -> bool:
        return isinstance(getattr(h, "module", None), CTCHashModule)

    if ckpt:
        from speechret.hashing.hasher import Hasher

        hasher = Hasher.from_checkpoint(ckpt, device=str(device))
    elif main is not None and is_ctc(getattr(main, "hasher", None)):
        hasher = main.hasher
    else:
        raise ConfigError("baseline 'asr' needs a paper-C (CTC pronunciation) model: set "
                          "evaluate.asr_ckpt=<ckpt of cnn3d_bilstm_ctc / bilstm_ctc_baseline>")
    if not is_ctc(hasher):
        raise ConfigError(f"baseline 'asr': evaluate.asr_ckpt={ckpt} is not a paper-C CTC checkpoint")
    return ASRSystem(hasher, name=name)


def instantiate_baselines(specs: Any, catalog: Any, main: Any = None) -> list[Any]:
    """The baseline systems of ``evaluate.baselines`` (``specs``), in order.  Each entry is a name
    of ``catalog`` (``evaluate.baseline_systems``: name → ``_target_`` node, from
    ``conf/baseline/<name>.yaml``) or a ``_target_`` node itself; ``hydra.utils.instantiate``
    builds it, passing ``main`` (the evaluated checkpoint's system) to a node with a ``main`` key.
    A bad entry raises :class:`~speechret.errors.ConfigError` naming its key."""
    if specs is None:
        return []
    available = sorted(str(k) for k in catalog) if catalog else []
    if isinstance(specs, (str, Mapping)) or not isinstance(specs, (Sequence, ListConfig)):
        raise ConfigError(f"evaluate.baselines must be a list of baseline names ({', '.join(available)}) "
                          f"or _target_ nodes, not {specs!r}")
    out = []
    for i, spec in enumerate(specs):
        if isinstance(spec, Mapping):
            node, key = spec, f"evaluate.baselines[{i}]"
        else:
            if catalog is None or str(spec) not in catalog:
                raise ConfigError(f"evaluate.baselines: unknown baseline {spec!r}: one of {available} "
                                  "(conf/baseline/<name>.yaml, mounted at evaluate.baseline_systems.<name> by "
                                  "conf/evaluate.yaml)")
            node, key = catalog[str(spec)], f"evaluate.baseline_systems.{spec}"
        out.append(_instantiate_system(node, key, main))
    names = [getattr(s, "name", None) for s in ([main] if main is not None else []) + out]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ConfigError(f"evaluate.baselines: more than one system named {clash} (metrics keys <system>.<key> "
                          "would collide); give each baseline node its own name")
    return out


def _instantiate_system(node: Any, key: str, main: Any) -> Any:
    if not isinstance(node, Mapping) or "_target_" not in node:
        raise ConfigError(f"{key}: a baseline is a Hydra node with a _target_ (a retrieval system class or "
                          f"factory), not {OmegaConf.to_container(node) if isinstance(node, DictConfig) else node!r}")
    try:
        factory = instantiate(node, _partial_=True, _convert_="all")
    except InstantiationException as e:
        raise ConfigError(f"{key}: {e}") from e
    try:
        return factory(**({MAIN_KEY: main} if MAIN_KEY in node else {}))
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{key}: {e}") from e
