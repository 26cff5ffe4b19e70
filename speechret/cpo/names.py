"""CPO names (``gain_+3dB``, ``mp3_128k``, ...), the papers' CPO sets and CPO construction.

Every CPO is built one way: a Hydra config node ``{_target_: <class path>, <param>: <value>}``
instantiated with :func:`hydra.utils.instantiate`. The name language used in ``conf/cpo``,
``conf/protocol`` and on the command line is a shorthand for such nodes: :func:`parse_cpo_name`
is its one parser, :func:`build_cpo` builds a CPO from a name, a node or a CPO.

Names are case-insensitive: ``gain_<dB>dB``; ``<kind>_<snr>dB`` with kind ``gaussian`` / ``awgn``,
``white``, ``car``, ``cafe`` / ``babble``; ``requant_<bits>bit``; ``resample_<kHz>k``;
``mp3_<kbps>k``; ``identity`` / ``none`` / ``original``. ``build_cpo(op.name)`` rebuilds an
equivalent op.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from speechret.cpo.base import CPO
from speechret.cpo.mp3 import MP3RoundTrip
from speechret.cpo.noise import CafeNoise, CarNoise, GaussianNoise, WhiteNoise
from speechret.cpo.ops import Gain, Identity, Requantize, ResampleRoundTrip
from speechret.errors import ConfigError

__all__ = ["PAPER_CPOS", "build_cpo", "parse_cpo_name"]

#: The CPO sets of the three papers (see :mod:`speechret.cpo` for sections / tables).
PAPER_CPOS: dict[str, list[str]] = {
    "A": ["mp3_128k", "requant_8bit", "gain_-3dB", "gain_+3dB", "gaussian_30dB"],
    "B": ["gain_-3dB", "gain_+3dB", "mp3_128k", "resample_8k"],
    "C": [f"{kind}_{snr}dB" for kind in ("cafe", "white", "car") for snr in (0, 5, 10, 15, 20, 25)],
}

_NUM = r"[+-]?\d+(?:\.\d+)?"
_NOISES: dict[str, type[GaussianNoise]] = {
    "gaussian": GaussianNoise, "awgn": GaussianNoise, "white": WhiteNoise,
    "car": CarNoise, "cafe": CafeNoise, "babble": CafeNoise,
}


def _node(cls: type[CPO], **params: Any) -> dict[str, Any]:
    return {"_target_": f"{cls.__module__}.{cls.__qualname__}", **params}


def _noise_node(g: dict[str, str], sample_rate: int, n_talkers: int) -> dict[str, Any]:
    cls = _NOISES[g["kind"]]
    node = _node(cls, snr_db=float(g["snr"]))
    if cls in (CarNoise, CafeNoise):
        node["sample_rate"] = sample_rate
    if cls is CafeNoise:
        node["n_talkers"] = n_talkers
    return node


#: The name language: a full-match pattern over the lower-cased name, and the config node of a
#: match (named groups, ``sample_rate``, ``n_talkers``).
_FORMS: list[tuple[re.Pattern[str], Callable[[dict[str, str], int, int], dict[str, Any]]]] = [
    (re.compile(r"identity|none|original"), lambda g, sr, nt: _node(Identity)),
    (re.compile(rf"gain_(?P<db>{_NUM})db"), lambda g, sr, nt: _node(Gain, db=float(g["db"]))),
    (re.compile(rf"(?P<kind>{'|'.join(_NOISES)})_(?P<snr>{_NUM})db"), _noise_node),
    (re.compile(r"requant_(?P<bits>\d+)bits?"),
     lambda g, sr, nt: _node(Requantize, bits=int(g["bits"]))),
    (re.compile(r"resample_(?P<khz>\d+(?:\.\d+)?)k(?:hz)?"),
     lambda g, sr, nt: _node(ResampleRoundTrip, orig_sr=sr,
                             mid_sr=int(round(float(g["khz"]) * 1000)))),
    (re.compile(r"mp3_(?P<kbps>\d+)k(?:bps)?"),
     lambda g, sr, nt: _node(MP3RoundTrip, bitrate_kbps=int(g["kbps"]), sample_rate=sr)),
]


def parse_cpo_name(name: str, *, sample_rate: int = 16000, n_talkers: int = 5) -> dict[str, Any]:
    """The Hydra config node of a CPO name (case-insensitive), e.g.
    ``parse_cpo_name("gain_+3dB") == {"_target_": "speechret.cpo.ops.Gain", "db": 3.0}``.

    ``sample_rate`` goes to the ops that need it (car / cafe noise, ``resample_<kHz>k`` from
    ``sample_rate`` through ``kHz``, MP3), ``n_talkers`` to cafe noise. Raises
    :class:`~speechret.errors.ConfigError` for a name outside the language.
    """
    key = str(name).strip().lower()
    for pattern, node in _FORMS:
        m = pattern.fullmatch(key)
        if m:
            return node(m.groupdict(), int(sample_rate), int(n_talkers))
    raise ConfigError(
        f"unknown CPO name {name!r}; expected e.g. gain_+3dB, gaussian_30dB, white_10dB, "
        f"car_5dB, cafe_0dB, requant_8bit, resample_8k, mp3_128k, identity"
    )


def build_cpo(spec: str | Mapping[str, Any] | CPO, *, sample_rate: int = 16000, pool: Any = None,
              n_talkers: int = 5) -> CPO:
    """Build a CPO from a name (see :func:`parse_cpo_name`; ``sample_rate`` and ``n_talkers``
    apply to names only) or a config node with ``_target_``; a CPO instance is returned as is.

    ``pool`` becomes the babble pool of a cafe noise (:meth:`CafeNoise.set_pool`). A bad name or
    parameter raises :class:`~speechret.errors.ConfigError` naming it and the problem.
    """
    if isinstance(spec, CPO):
        return spec
    if isinstance(spec, str):
        label = repr(spec)
        node: Any = parse_cpo_name(spec, sample_rate=sample_rate, n_talkers=n_talkers)
    elif isinstance(spec, Mapping):
        if "_target_" not in spec:
            raise ConfigError(f"CPO config node {dict(spec)!r} has no _target_")
        label, node = f"{spec['_target_']!r}", spec
    else:
        raise ConfigError(f"a CPO is a name (e.g. gain_+3dB), a config node with _target_ or a "
                          f"CPO instance, got {type(spec).__name__} {spec!r}")
    try:
        op = instantiate(node)
    except InstantiationException as exc:
        cause = exc.__cause__
        if cause is None or isinstance(cause, (ValueError, TypeError, ImportError, AttributeError)):
            raise ConfigError(f"bad CPO {label}: {cause or exc}") from (cause or exc)
        raise cause  # a failed operation (e.g. libsndfile without MP3) keeps its own type
    if not isinstance(op, CPO):
        raise ConfigError(f"CPO config {label} built a {type(op).__name__}, not a CPO")
    if pool is not None and isinstance(op, CafeNoise):
        op.set_pool(pool)
    return op
