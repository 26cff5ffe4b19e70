"""Train a deep-hashing model: ``python train.py experiment=<name> [overrides]`` (= ``speechret train``).

Examples::

    python train.py experiment=cnn_hash
    python train.py experiment=lstm_hash data=dspspeech20 data.root=../shared/data/dspspeech20
    python train.py experiment=cnn_hash trainer=gpu logger=wandb
    python train.py experiment=cnn_hash ckpt_path=<last.ckpt>          # resume
    python train.py -m experiment=cnn_hash model.hash_bits=64,128,256,384,512

A thin shim: the Hydra main is :func:`speechret.apps.train.main` (configs: ``conf/``).
"""

from speechret.apps.train import main

if __name__ == "__main__":
    main()
