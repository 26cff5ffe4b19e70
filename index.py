"""index.py — add a corpus to an encrypted speech library (or rebuild / fsck it).

Examples::

    python index.py ckpt=logs/train/runs/<run>/checkpoints/epoch_005.ckpt create_key=true
    python index.py ckpt=... data=dspspeech20 data.root=../shared/data/dspspeech20 library=libraries/dsp
    python index.py command=rebuild library=libraries/dsp
"""

import hydra
from omegaconf import DictConfig

from speechret.apps.index import run_index


@hydra.main(version_base="1.3", config_path="conf", config_name="index")
def main(cfg: DictConfig) -> None:
    run_index(cfg)


if __name__ == "__main__":
    main()
