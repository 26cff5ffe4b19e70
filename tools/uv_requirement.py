"""Print a hash-pinned pip requirement for the uv that ``uv.lock`` records.

``make setup`` bootstraps uv into a fresh ``.venv`` with ``pip install --require-hashes`` from this
line, so even the installer is the exact, hash-checked release that the lock names; uv then
installs everything else from ``uv.lock``.  Stdlib only (``tomllib``): it runs before anything is
installed.

Usage: ``python tools/uv_requirement.py uv.lock > requirement.txt``
"""

from __future__ import annotations

import sys
import tomllib


def uv_requirement(lock_path: str) -> str:
    with open(lock_path, "rb") as fh:
        lock = tomllib.load(fh)
    entries = [p for p in lock.get("package", []) if p.get("name") == "uv"]
    if len(entries) != 1:
        raise SystemExit(f"{lock_path}: expected exactly one locked 'uv' package, found {len(entries)}; "
                         "is uv still in the 'dev' extra of pyproject.toml? Run `make lock`.")
    pkg = entries[0]
    files = list(pkg.get("wheels", [])) + ([pkg["sdist"]] if "sdist" in pkg else [])
    hashes = sorted({f["hash"] for f in files if "hash" in f})
    if not hashes:
        raise SystemExit(f"{lock_path}: the locked 'uv' {pkg['version']} has no file hashes")
    return f"uv=={pkg['version']} " + " ".join(f"--hash={h}" for h in hashes)


if __name__ == "__main__":
    print(uv_requirement(sys.argv[1] if len(sys.argv) > 1 else "uv.lock"))
