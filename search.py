"""search.py — query an encrypted speech library by spoken example.

Examples::

    python search.py library=libraries/dsp queries=query.wav
    python search.py library=libraries/dsp queries=queries/ mode=threshold threshold=0.2 format=json
    python search.py library=libraries/b queries=q.wav mode=two_stage stage2=threshold threshold=0.2  # paper B τ
    python search.py library=libraries/c queries=q.wav mode=full_speech gamma=0.31    # paper C, ≤ γ
    python search.py library=libraries/dsp queries=q.wav decrypt=hits/   # needs the key
"""

import hydra
from omegaconf import DictConfig

from speechret.apps.search import run_search


@hydra.main(version_base="1.3", config_path="conf", config_name="search")
def main(cfg: DictConfig) -> None:
    run_search(cfg)


if __name__ == "__main__":
    main()
