"""speechret: privacy-preserving content-based speech retrieval with deep hashing.

The reference implementation of three papers (see ``../shared/docs/DESIGN.md``):

* A (000): LSTM deep hashing over Log-Mel / MFCC, 4D hyperchaotic speech cipher;
* B (001): CNN / CRNN deep hashing with a category code and "two-stage" retrieval, Rossler cipher;
* C (002): time-sequence speech visualization (SVS), 3D CNN-BiLSTM / BiConvLSTM trained with CTC
  over a 27-class Mandarin pronunciation model, grouped 27-bit sliding matching.
"""

__version__ = "0.1.0"

# ${speechret_root:} (paths.root_dir), ${speechret_if:...} and ${speechret_config_groups:} for every
# config composed after `import speechret` (speechret/config.py).  Without omegaconf (a client that
# installed only torch to run an exported hasher, speechret.export.load_exported) there is nothing
# to compose and nothing to register.
try:
    from speechret.config import register_resolvers as _register_resolvers  # noqa: E402
except ImportError:  # pragma: no cover - exercised by tests/test_export.py in a subprocess
    pass
else:
    _register_resolvers()

# FAISS logs 7 INFO lines from faiss.loader on import; every import of it goes through here first
import logging as _logging  # noqa: E402

_logging.getLogger("faiss.loader").setLevel(_logging.WARNING)

#: the public API (:mod:`speechret.api`, :mod:`speechret.export`), imported on first use so that
#: ``import speechret`` stays light (no torch, FAISS or Hydra until a name is touched).
_LAZY = {
    "Hasher": "speechret.api",
    "Library": "speechret.api",
    "SearchHit": "speechret.api",
    "SearchResult": "speechret.api",
    "AddReport": "speechret.api",
    "DecryptedItem": "speechret.api",
    "FsckReport": "speechret.api",
    "export_hasher": "speechret.export",
    "load_exported": "speechret.export",
    "ExportedHasher": "speechret.export",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'speechret' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
