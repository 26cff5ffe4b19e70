"""The wheel works outside the checkout (issue 15).

Builds the wheel from a copy of the project's sources (``uv build --wheel --no-build-isolation``
with the locked setuptools: no network), checks that it ships every YAML of ``conf/`` under
``speechret/conf/`` and the ``speechret`` console script, installs it without dependencies into a
fresh venv that borrows the project venv's third-party packages (a ``.pth`` line naming its
site-packages; the project's own editable ``speechret`` is not activated by that), and from another
folder runs ``speechret --help`` and ``speechret demo --cfg job``: the configs are found, the
imported package is the installed one, and the paths hang off the current folder (the documented
rule for an installed wheel, ``conf/paths/default.yaml``).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _uv() -> str:
    for cand in (Path(sys.executable).parent / "uv", shutil.which("uv")):
        if cand and Path(cand).is_file():
            return str(cand)
    msg = "uv not found (it is in the dev extra: make test installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd} failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    return res


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (as a checkout has them: speechret/conf a link
    to conf/), so the build writes nothing into the checkout."""
    uv = _uv()
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "conf", src / "conf", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "speechret", src / "speechret", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    assert (src / "speechret" / "conf").is_symlink()
    env = {**os.environ, "UV_OFFLINE": "1", "UV_NO_CONFIG": "1"}
    _run([uv, "build", "--wheel", "--no-build-isolation", "--python", sys.executable, "--out-dir", str(tmp / "dist"),
          str(src)], cwd=tmp, env=env)
    wheels = list((tmp / "dist").glob("speechret-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_ships_the_configs_and_the_console_script(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    confs = {f"speechret/conf/{p.relative_to(REPO / 'conf').as_posix()}" for p in (REPO / "conf").rglob("*.yaml")}
    assert len(confs) > 50 and confs <= names, sorted(confs - names)[:10]
    assert "[console_scripts]" in entry_points and "speechret = speechret.cli:main" in entry_points
    assert "speechret/cli.py" in names and "speechret/config.py" in names


def test_installed_wheel_runs_from_another_folder(wheel, tmp_path):
    uv = _uv()
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path, env=dict(os.environ))
    py = venv / "bin" / "python"
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    # the project venv's third-party packages (torch, hydra, ...), appended to sys.path after the
    # new venv's own site-packages; .pth files in that folder (the editable speechret) are not run
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_project_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "SPEECHRET_ROOT", "PROJECT_ROOT", "SPEECHRET_DATA_DIR", "SPEECHRET_SHARED_DATA")}
    env.update(PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1", UV_OFFLINE="1", UV_NO_CONFIG="1")
    _run([uv, "pip", "install", "--no-deps", "--python", str(py), str(wheel)], cwd=tmp_path, env=env)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = _run([str(py), "-c", "import sys, speechret, speechret.config as c; "
                  "print(speechret.__file__); print(c.CONF_DIR); print(c.project_root()); print(sys.path)"],
                 cwd=elsewhere, env=env).stdout.splitlines()
    pkg_file, conf_dir, root = Path(probe[0]), Path(probe[1]), Path(probe[2])
    assert pkg_file.is_relative_to(site), f"speechret imported from {pkg_file}, not the installed wheel"
    assert conf_dir.is_dir() and not conf_dir.is_symlink() and conf_dir.is_relative_to(site)
    assert root == elsewhere  # an installed wheel: the folder the command starts in
    entries = [Path(e or elsewhere).resolve() for e in ast.literal_eval(probe[3])]
    assert REPO.resolve() not in entries and not any(e.is_relative_to(REPO / "speechret") for e in entries)

    script = venv / "bin" / "speechret"
    out = _run([str(script), "--help"], cwd=elsewhere, env=env).stdout
    for name in ("train", "index", "search", "evaluate", "demo"):
        assert f"\n  {name} " in out

    job = _run([str(script), "demo", "--cfg", "job", "--resolve", "data=dspspeech20", "trainer.max_epochs=1"],
               cwd=elsewhere, env=env).stdout
    assert "task_name: demo" in job and "corpus: dspspeech20" in job and "max_epochs: 1" in job
    assert f"root_dir: {elsewhere}\n" in job and f"log_dir: {elsewhere}/logs\n" in job
    assert f"root: {elsewhere}/../shared/data/dspspeech20\n" in job
    assert str(REPO) not in job  # nothing points into the checkout the wheel was built from
    assert list(elsewhere.iterdir()) == []  # --cfg writes nothing

    # $SPEECHRET_ROOT moves the root of an installed wheel too
    moved = _run([str(py), "-c", "import speechret.config as c; print(c.project_root())"], cwd=elsewhere,
                 env={**env, "SPEECHRET_ROOT": str(tmp_path / "proj")}).stdout.strip()
    assert Path(moved) == tmp_path / "proj"
