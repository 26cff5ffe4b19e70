"""Hasher: checkpoint + audio → hash codes, through exactly the training feature pipeline.

The checkpoint carries the resolved run config (``checkpoint["speechret"]``, written by
:class:`speechret.models.hash_modules.HashingModule`).  From it the Hasher rebuilds the same
feature extractor (``cfg.features``) and LightningModule (``cfg.model``), loads the weights and
then runs the steps training runs in :meth:`SpeechDataModule.prepare_batch` and
:meth:`HashingModule.codes`: load/validate audio → variable-length collate → features → network
→ :meth:`speechret.hashing.HashMethod.codes`.  Batched, on CPU or GPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from speechret.audio import load_audio, validate_wave
from speechret.config import conf_dir, upgrade_run_config
from speechret.data.dataset import collate_speech
from speechret.errors import ConfigError
from speechret.hashing.method import HashMethod, hash_method_class

AudioLike = str | Path | np.ndarray | torch.Tensor


def views_node(spec: Any, param: str = "views") -> Any:
    """A ``views`` spec as :meth:`Hasher.from_checkpoint` takes it: ``"checkpoint"`` unchanged,
    ``None`` for ``None`` / ``"none"``, the ``views`` node of ``conf/views/<spec>.yaml`` for an
    option's name, and any other node as it is; an unknown name raises :class:`ConfigError`
    naming ``param``."""
    if spec is None or spec == "none":
        return None
    if not isinstance(spec, str) or spec == "checkpoint":
        return spec
    options = conf_dir() / "views"
    path = options / f"{spec}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in options.glob("*.yaml"))
        raise ConfigError(f"{param} must be 'checkpoint' or one of {names} (conf/views), not {spec!r}")
    return OmegaConf.load(path).get("views")


class Hasher:
    """Turns audio (paths, arrays or batches) into codes with a trained model.

    Args:
        module: the trained :class:`~speechret.models.hash_modules.HashingModule`.
        features: the feature extractor used in training.
        sample_rate: audio rate the features expect.
        device: ``"cpu"``, ``"cuda"``, ...
        batch_size: utterances per forward pass.
        frontend: the run's front end (``conf/frontend``, e.g. silence trimming), applied to the
            waveforms before the features exactly as in training.
        views: test-time views of each clip (``conf/views``, :class:`speechret.frontend.SpeedViews`),
            after the front end; the method merges an item's views into one code
            (:meth:`~speechret.hashing.HashMethod.codes_of_views`).  ``None``: one view.
    """

    def __init__(self, module, features: nn.Module, sample_rate: int = 16000, device: str = "cpu",
                 batch_size: int = 32, config: dict[str, Any] | None = None,
                 frontend: nn.Module | None = None, views: nn.Module | None = None) -> None:
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.features = features.to(self.device).eval()
        self.frontend = frontend.to(self.device).eval() if frontend is not None else None
        self.views = views.to(self.device).eval() if views is not None else None
        if self.views is not None and self.hashing.variable_length:
            raise ConfigError(f"views: {self.method} codes are variable-length sequences, which test-time views "
                              "cannot merge into one code (set views=none)")
        self.sample_rate = sample_rate
        self.batch_size = batch_size
        self.config = config or {}

    @property
    def method(self) -> str:
        """The name of the checkpoint's hash method."""
        return self.module.hash_method

    @property
    def hashing(self) -> HashMethod:
        """The checkpoint's :class:`~speechret.hashing.HashMethod` (codes, distances, storage)."""
        return self.module.hashing

    @property
    def n_classes(self) -> int:
        return self.module.n_classes

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", batch_size: int = 32,
                        views: Any = "checkpoint", hash_options: Mapping[str, Any] | None = None) -> "Hasher":
        """The hasher of a training checkpoint.  ``views`` (:func:`views_node`): ``"checkpoint"``
        (the run config's own ``views``), ``None`` / ``"none"`` (one view), the name of a
        ``conf/views`` option or a ``views`` config node (``_target_``) that replaces it -- to
        measure views on a checkpoint without retraining (``evaluate.views``).  ``hash_options``
        (``evaluate.hash_options``): options laid over the run's ``model.hash_options`` (e.g. paper
        C's ``binarize``), for the same purpose; the method refuses any it does not take."""
        views = views_node(views)
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if "speechret" not in ckpt:
            raise ValueError(f"{path}: not a speechret checkpoint (no run config stored in it)")
        cfg = upgrade_run_config(OmegaConf.create(ckpt["speechret"]))
        if not (isinstance(views, str) and views == "checkpoint"):
            cfg.views = views
        if hash_options:
            if cfg.model.get("hash_method"):
                hash_method_class(cfg.model.hash_method).check_options(hash_options, "hash_options")
            given = cfg.model.get("hash_options")
            given = OmegaConf.to_container(given, resolve=True) if isinstance(given, DictConfig) else {}
            cfg.model.hash_options = {**given, **dict(hash_options)}
        return cls.from_config(cfg, ckpt["state_dict"], device=device, batch_size=batch_size)

    @classmethod
    def from_config(cls, cfg: DictConfig, state_dict: dict[str, torch.Tensor] | None = None,
                    device: str = "cpu", batch_size: int = 32) -> "Hasher":
        features = instantiate(cfg.features)
        frontend = instantiate(cfg.frontend) if cfg.get("frontend") else None
        views = instantiate(cfg.views) if cfg.get("views") else None
        module = instantiate(cfg.model)
        if state_dict is not None:
            # torch.compile wraps the net as ``net._orig_mod``: accept either naming.
            state_dict = {k.replace("net._orig_mod.", "net."): v for k, v in state_dict.items()}
            module.load_state_dict(state_dict)
        module.run_config = OmegaConf.to_container(cfg, resolve=True)
        sr = int(OmegaConf.select(cfg, "data.sample_rate", default=16000))
        return cls(module, features, sample_rate=sr, device=device, batch_size=batch_size,
                   config=module.run_config, frontend=frontend, views=views)

    # ------------------------------------------------------------------ inputs
    def _wave(self, audio: AudioLike, name: str) -> np.ndarray:
        if isinstance(audio, (str, Path)):
            return load_audio(audio, self.sample_rate)
        wave = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1:
            raise ValueError(f"{name}: expected a mono waveform (T,), got shape {wave.shape}")
        validate_wave(wave, name, self.sample_rate, 0.0)
        return wave

    @property
    def n_views(self) -> int:
        """Test-time views per clip (1 without ``views``)."""
        return 1 if self.views is None else int(self.views.n_views)

    @torch.no_grad()
    def outputs(self, waves: Sequence[np.ndarray], views: bool = False):
        """Network outputs for one batch of waveforms (features computed on the device); with
        ``views`` the outputs of every test-time view, ``n_views`` rows per clip, item-major."""
        batch = collate_speech([{"wave": w, "label": -1, "targets": [], "index": i, "item_index": i,
                                 "cpo": -1, "id": str(i)} for i, w in enumerate(waves)])
        wave = batch["wave"].to(self.device)
        lengths = batch["wave_lengths"].to(self.device)
        if self.frontend is not None:
            wave, lengths = self.frontend(wave, lengths)
        if views and self.views is not None:
            wave, lengths = self.views(wave, lengths)
        feats, flen = self.features(wave, lengths)
        return self.module(feats, flen)

    def codes_of_waves(self, waves: Sequence[np.ndarray]) -> Any:
        """Codes for a list of waveforms: an (N, bits) bool array, or a list of (S, 27) arrays
        for paper C's variable-length codes; with ``views``, each clip's code merges its views."""
        return self.hashing.concat([self.hashing.codes_of_views(out, self.n_views)
                                    for out in self.batched_outputs(waves)])

    def batched_outputs(self, waves: Sequence[np.ndarray]) -> Iterator[Any]:
        """:meth:`outputs` of ``waves`` with every test-time view, ``batch_size`` rows per forward pass:
        one output per slice of ``batch_size // n_views`` clips, ``n_views`` rows per clip, item-major."""
        step = max(1, self.batch_size // self.n_views)
        for start in range(0, len(waves), step):
            yield self.outputs(waves[start : start + step], views=True)

    def codes(self, waves: Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor,
              lengths: Sequence[int] | np.ndarray | torch.Tensor | None = None) -> Any:
        """Codes of waveforms at :attr:`sample_rate` (the public API, :mod:`speechret.api`).

        ``waves``: a list of 1-D arrays / tensors, or a zero-padded batch ``(B, T)`` with
        ``lengths`` (valid samples per row; without it every row is whole). Each waveform is
        validated (:func:`~speechret.audio.validate_wave`) and coded by :meth:`codes_of_waves`
        (front end, features, network, the method's code construction). Returns ``bool (N, bits)``,
        or a list of ``(S, 27)`` arrays for paper C's variable-length codes."""
        if isinstance(waves, (np.ndarray, torch.Tensor)) and waves.ndim == 2:
            batch = waves.detach().cpu().numpy() if isinstance(waves, torch.Tensor) else np.asarray(waves)
            if lengths is None:
                lens = [batch.shape[1]] * batch.shape[0]
            else:
                lens = [int(n) for n in (lengths.tolist() if hasattr(lengths, "tolist") else lengths)]
                if len(lens) != batch.shape[0] or any(not 0 < n <= batch.shape[1] for n in lens):
                    raise ValueError(f"lengths: expected {batch.shape[0]} lengths in [1, {batch.shape[1]}] for a "
                                     f"batch of shape {batch.shape}, got {lens}")
            items = [batch[i, :n] for i, n in enumerate(lens)]
        elif isinstance(waves, (np.ndarray, torch.Tensor)) and waves.ndim == 1:
            raise ValueError("waves: expected a list of 1-D waveforms or a (B, T) batch, got one 1-D waveform "
                             "(wrap it in a list)")
        else:
            if lengths is not None:
                raise ValueError("lengths: only with a padded (B, T) batch, not with a list of waveforms")
            items = list(waves)
        return self.codes_of_waves([self._wave(w, f"waves[{i}]") for i, w in enumerate(items)])

    def codes_from_files(self, paths: Iterable[str | Path]) -> Any:
        """Codes of audio files (loaded, resampled to :attr:`sample_rate` and validated by
        :func:`~speechret.audio.load_audio`), in order; see :meth:`codes`."""
        if isinstance(paths, (str, Path)):
            raise ValueError(f"paths: expected a list of audio files, got one path {str(paths)!r} (wrap it in a list)")
        return self.codes_of_waves([self._wave(Path(p), str(p)) for p in paths])

    def __call__(self, audio: AudioLike | Iterable[AudioLike]) -> Any:
        """Codes of one item (path, array) or of a list of items; one item gives one code."""
        single = isinstance(audio, (str, Path)) or (
            isinstance(audio, (np.ndarray, torch.Tensor)) and audio.ndim == 1)
        items = [audio] if single else list(audio)
        waves = [self._wave(a, str(a) if isinstance(a, (str, Path)) else f"array[{i}]") for i, a in enumerate(items)]
        codes = self.codes_of_waves(waves)
        return codes[0] if single else codes
