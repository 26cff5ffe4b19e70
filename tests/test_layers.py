"""The package's layers point one way, and no module grows past the size limit unexplained.

Layers, lowest first (a module may import its own layer and those below, never one above):

0. ``speechret``, ``errors``, ``fileio``, ``metrics`` (retrieval metrics, pure numpy), ``torchaudio_api`` — foundations;
1. ``audio``, ``crypto`` — waveforms and ciphers;
2. ``cpo``, ``augment`` (with ``spec_augment``, ``concat``), ``frontend``, ``features`` — signal operations on waveforms;
3. ``data`` — corpora, manifests, the DataModule;
4. ``hashing`` — hash methods (codes, widths, distances, matchers they need), bits, sliding
   matching, ranking metrics, the checkpoint hasher;
5. ``models`` — architectures, losses and the LightningModules (which ask the hash method for
   codes and validation distances, so they sit above ``hashing``);
6. ``search`` — FAISS indexes and matchers;
7. ``library`` — the encrypted on-disk library, indexing and query-by-example over it;
8. ``apps`` (train / index / search / demo / sweep pipelines) and ``evaluate`` beside them.

Every import counts, including those inside functions (``ast.walk`` over the whole module), so a
function-level import cannot hide an upward link.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "speechret"

LAYERS: list[tuple[str, ...]] = [
    ("speechret", "speechret.errors", "speechret.fileio", "speechret.metrics", "speechret.torchaudio_api"),
    ("speechret.audio", "speechret.crypto"),
    ("speechret.cpo", "speechret.augment", "speechret.spec_augment", "speechret.concat", "speechret.frontend",
     "speechret.features"),
    ("speechret.data",),
    ("speechret.hashing",),
    ("speechret.models",),
    ("speechret.search",),
    ("speechret.library",),
    ("speechret.apps", "speechret.evaluate", "speechret.cli", "speechret.api", "speechret.export",
     "speechret.service", "speechret.client",
     "speechret.utils.run_records"),
]
#: modules allowed to exceed MAX_LINES, each with the reason given in its docstring
MAX_LINES = 500


def layer_of(module: str) -> int:
    best, best_len = None, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    if best is None:
        raise AssertionError(f"module {module} is in no layer: add it to tests/test_layers.py LAYERS")
    return best


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, module: str | None = None) -> list[tuple[int, str]]:
    """``(line, module)`` of every speechret import in the file, at any depth (functions too);
    relative imports resolved against ``module`` (default: the file's own name)."""
    tree = ast.parse(path.read_text(), str(path))
    mod = module or module_name(path)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:
                base = pkg.split(".")
                name = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            out.append((node.lineno, name))
            if name == "speechret":  # ``from speechret import features`` imports the subpackage
                out += [(node.lineno, f"speechret.{a.name}") for a in node.names]
    return [(ln, n) for ln, n in out if n == "speechret" or n.startswith("speechret.")]


def upward_imports(path: Path, module: str | None = None) -> list[str]:
    mod = module or module_name(path)
    own = layer_of(mod)
    return [f"{path.name}:{line} ({mod}, layer {own}) imports {name} (layer {layer_of(name)})"
            for line, name in imports_of(path, mod) if layer_of(name) > own]


MODULES = sorted(PKG.rglob("*.py"))


def test_every_module_has_a_layer():
    for path in MODULES:
        layer_of(module_name(path))


def test_no_module_imports_a_layer_above_it():
    upward = [u for path in MODULES for u in upward_imports(path)]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_rule_catches_an_upward_import(tmp_path):
    """A function-level import of a higher layer, absolute or relative, is caught (teeth)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy\n\ndef f():\n    from speechret.library.store import SpeechLibrary\n"
                   "    from ..models import hash_modules\n    return SpeechLibrary, hash_modules\n")
    found = upward_imports(bad, "speechret.features.bad")
    assert len(found) == 2, found
    assert "speechret.library.store" in found[0] and "speechret.models" in found[1]
    assert upward_imports(bad, "speechret.apps.bad") == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_module_size(path):
    n = len(path.read_text().splitlines())
    if n > MAX_LINES:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert "lines" in doc.lower() and "because" in doc.lower(), (
            f"{path.relative_to(PKG.parent)} has {n} lines (> {MAX_LINES}) and its docstring gives no reason")
