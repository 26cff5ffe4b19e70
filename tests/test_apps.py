"""The app pipelines find the repository's Hydra configs from where they live."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from speechret.apps import demo


def test_demo_finds_its_config_dir():
    here = Path(demo.__file__).resolve().parent
    src = inspect.getsource(demo)
    rel = re.search(r'config_path="([^"]+)", config_name="demo"', src).group(1)
    assert (here / rel / "demo.yaml").is_file(), f"{here / rel} holds no demo.yaml"
    assert (demo.CONF_DIR / "features").is_dir() and demo.CONF_DIR == (here / rel).resolve()
