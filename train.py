"""Train a deep-hashing model: ``python train.py experiment=<name> [overrides]``.

Examples::

    python train.py experiment=cnn_hash
    python train.py experiment=lstm_hash data=dspspeech20 data.root=../shared/data/dspspeech20
    python train.py experiment=cnn_hash trainer=gpu logger=wandb
    python train.py -m experiment=cnn_hash model.hash_bits=64,128,256,384,512
"""

import hydra
from omegaconf import DictConfig

from speechret.apps.train import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    summary = train(cfg)
    metric = cfg.get("optimized_metric")
    return summary["metrics"].get(metric) if metric else None


if __name__ == "__main__":
    main()
