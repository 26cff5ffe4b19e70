"""Bearer tokens of the search service: one to read (search, fetch, stats), one to write (add,
delete; it reads too).

Tokens come from files (owner-only, mode 0600 / 0400, checked like key files by
:func:`speechret.crypto.base.check_key_file_mode`) or from environment variables whose *names*
are configured; never from the command line or a config value (:func:`refuse_token_overrides`).
:class:`Tokens` never shows a token (its ``repr`` names only where they came from), and
:meth:`Tokens.role` compares a presented token with both tokens with :func:`hmac.compare_digest`
(constant time in the token's contents; both comparisons always run, so the time does not say
which one matched).
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from speechret.crypto.base import check_key_file_mode
from speechret.errors import ConfigError

__all__ = ["MIN_TOKEN_CHARS", "Tokens", "new_token_file", "refuse_token_overrides"]

#: shortest token accepted (``secrets.token_urlsafe(32)`` gives 43 characters)
MIN_TOKEN_CHARS = 24
READ, WRITE = "read", "write"


def _read_token(role: str, file: str | os.PathLike | None, env: str | None) -> tuple[str, str]:
    if file:
        path = Path(os.path.expanduser(os.fspath(file)))
        if not path.is_file():
            raise ConfigError(f"tokens.{role}_file: {path} does not exist (make one with "
                              f"python -m speechret.service new-token {path})")
        try:
            check_key_file_mode(path)
        except Exception as exc:  # KeyFileModeError: the same rule as key files
            raise ConfigError(f"tokens.{role}_file: {str(exc).replace('key file', 'token file', 1)}") from None
        token, source = path.read_text().strip(), f"file {path.name}"
    elif env:
        token, source = os.environ.get(env, "").strip(), f"${env}"
        if not token:
            raise ConfigError(f"tokens.{role}_env: the environment variable {env} is not set (or empty)")
    else:
        raise ConfigError(f"tokens: no {role} token: set tokens.{role}_file (a 0600 file) or tokens.{role}_env "
                          f"(the name of an environment variable)")
    return token, source


def _check_token(role: str, token: str, source: str) -> bytes:
    if not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise ConfigError(f"tokens.{role}: the {role} token from {source} is too short (< {MIN_TOKEN_CHARS} "
                          f"characters) or holds whitespace; make one with python -m speechret.service new-token")
    return token.encode()


class Tokens:
    """The read and write tokens (see the module docstring). They must differ."""

    def __init__(self, read: str, write: str, sources: tuple[str, str] = ("given", "given")):
        self._read = _check_token(READ, read, sources[0])
        self._write = _check_token(WRITE, write, sources[1])
        if hmac.compare_digest(self._read, self._write):
            raise ConfigError("tokens: the read and write tokens must differ (a reader could otherwise write)")
        self.sources = sources

    @classmethod
    def from_sources(cls, read_file: str | None = None, write_file: str | None = None,
                     read_env: str | None = None, write_env: str | None = None) -> Tokens:
        """Tokens from files (preferred when both are given) or environment variables."""
        r, rs = _read_token(READ, read_file, read_env)
        w, ws = _read_token(WRITE, write_file, write_env)
        return cls(r, w, (rs, ws))

    def role(self, presented: str | None) -> str | None:
        """``"write"``, ``"read"`` or None (no token, or a wrong one)."""
        p = (presented or "").encode()
        is_write = hmac.compare_digest(p, self._write)
        is_read = hmac.compare_digest(p, self._read)
        return WRITE if is_write else READ if is_read else None

    def __repr__(self) -> str:
        return f"Tokens(read from {self.sources[0]}, write from {self.sources[1]})"

    __str__ = __repr__


def new_token_file(path: str | os.PathLike) -> Path:
    """Write a new random token (``secrets.token_urlsafe(32)``, 256 bits) to ``path`` with mode
    0600. An existing file is never overwritten."""
    path = Path(os.path.expanduser(os.fspath(path)))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} exists: a token file is never overwritten") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")
    return path


def refuse_token_overrides(argv: list[str]) -> None:
    """A command-line override that carries a token (anything but ``*_file`` / ``*_env`` under
    ``tokens``, or a parameter named like a secret) is refused, naming the parameter only."""
    from speechret.crypto.keys import refuse_secret_overrides

    for arg in argv:
        if "=" not in arg or arg.startswith("-"):
            continue
        key = arg.split("=", 1)[0].lstrip("+~")
        parts = key.split(".")
        if (parts[0] == "tokens" and (len(parts) != 2 or not parts[1].endswith(("_file", "_env")))) \
                or parts[-1].lower().endswith("token"):
            raise ConfigError(f"{key}: a token is never accepted on the command line (its value is not shown); "
                              f"use tokens.read_file / tokens.write_file (0600 files) or tokens.read_env / "
                              f"tokens.write_env (names of environment variables)")
    refuse_secret_overrides(argv)
