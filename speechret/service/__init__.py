"""The keyless search service (the papers' cloud side): :mod:`speechret.service.app` (FastAPI
routes, auth and limits), :mod:`speechret.service.auth` (tokens), and the launchers here:
:func:`serve` (uvicorn) and :func:`main` (``python -m speechret.service`` / ``speechret serve``,
Hydra overrides of ``conf/serve.yaml``).

The package imports FastAPI / uvicorn only when used, so ``import speechret`` stays light.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

__all__ = ["CONF_DIR", "main", "serve"]

from speechret.config import CONF_DIR  # noqa: E402  (the package's configs: checkout and wheel alike)


def serve(library: str | os.PathLike, host: str = "127.0.0.1", port: int = 8750, tokens: Any = None,
          limits: Any = None, readers: int = 2, repair_on_start: bool = True, log_level: str = "info",
          access_log: bool = True, faiss_threads: int | None = 1) -> None:
    """Run the service for ``library`` with uvicorn until interrupted. ``tokens``: a
    :class:`~speechret.service.auth.Tokens` (or a mapping of
    :meth:`~speechret.service.auth.Tokens.from_sources` arguments: ``read_file``, ``write_file``,
    ``read_env``, ``write_env``); ``limits``: a :class:`~speechret.service.app.Limits` or a
    mapping of its fields. ``faiss_threads``: FAISS's OpenMP threads per search (default 1: the
    service's concurrency is its ``readers`` threads answering requests side by side; OpenMP
    teams inside each search oversubscribe the cores, and a team member descheduled by another
    request's work stalls the search -- measured here as a bimodal 0.7 ms / 40 ms per exact
    search over 100k codes with 2 threads on 2 busy cores); ``None`` leaves FAISS's default."""
    import uvicorn

    if faiss_threads is not None:
        import faiss

        faiss.omp_set_num_threads(int(faiss_threads))

    from speechret.service.app import Limits, create_app
    from speechret.service.auth import Tokens

    if not isinstance(tokens, Tokens):
        tokens = Tokens.from_sources(**dict(tokens or {}))
    if not isinstance(limits, Limits):
        limits = Limits(**dict(limits or {}))
    logging.basicConfig(level=getattr(logging, str(log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(library, tokens, limits, readers=readers, repair_on_start=repair_on_start)
    uvicorn.run(app, host=host, port=int(port), log_level=str(log_level).lower(), access_log=bool(access_log))


def _compose(argv: list[str]) -> Any:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("serve", overrides=list(argv))


def main(argv: list[str] | None = None) -> int:
    """``speechret serve`` / ``python -m speechret.service``: Hydra overrides of ``conf/serve.yaml``
    (``library=<dir> port=8750 tokens.read_file=... tokens.write_file=...``), or
    ``new-token <file>`` to write a fresh 0600 token file. Tokens on the command line are refused
    before anything is composed. Returns the exit status (2: a configuration error)."""
    from omegaconf import OmegaConf

    from speechret.errors import ConfigError, SpeechretError
    from speechret.service.auth import new_token_file, refuse_token_overrides

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["new-token"]:
            if len(argv) != 2:
                raise ConfigError("usage: python -m speechret.service new-token <file>")
            print(f"wrote {new_token_file(argv[1])} (mode 0600)")
            return 0
        refuse_token_overrides(argv)
        cfg = _compose(argv)
        if OmegaConf.is_missing(cfg, "library"):
            raise ConfigError("library: the library directory to serve is required (library=<dir>)")
        from hydra.utils import get_method

        node = OmegaConf.to_container(cfg, resolve=True)

        def call(n: dict) -> Any:  # the node's _target_ called directly: its errors stay ours
            return get_method(n["_target_"])(**{k: v for k, v in n.items() if k != "_target_"})

        node["tokens"], node["limits"] = call(node["tokens"]), call(node["limits"])
        call(node)
        return 0
    except SpeechretError as exc:  # a ConfigError, or a LibraryError naming the directory
        print(f"speechret serve: {exc}", file=sys.stderr)
        return 2
