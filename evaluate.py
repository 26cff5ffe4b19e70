"""evaluate.py — run an evaluation protocol on a trained checkpoint; = ``speechret evaluate``.

The evaluation set never holds what the checkpoint trained or validated on: by default its own
test split, with ``data=...`` that corpus minus the checkpoint's training and validation items (and
speakers, for cross_speaker / keyword); ``evaluate.set=all`` evaluates everything and says so.  The
report's first line names the set (conf/evaluate.yaml, speechret/evaluate/eval_sets.py).
Baselines are named in ``evaluate.baselines`` and built from ``conf/baseline/<name>.yaml``.

Examples::

    python evaluate.py ckpt_path=logs/<task_name>/runs/<run>/checkpoints/epoch_007.ckpt protocol=cpo_retrieval
    python evaluate.py ckpt_path=<ckpt> protocol=cpo_retrieval data=dspspeech20 data.root=../shared/data/dspspeech20
    python evaluate.py ckpt_path=<ckpt> protocol=keyword evaluate.baselines=[dtw]
    python evaluate.py ckpt_path=<ckpt> protocol=cross_speaker evaluate.baselines=[dtw] evaluate.baseline_systems.dtw.band=0.1
    python evaluate.py ckpt_path=logs/<task_name>/multiruns/<sweep> protocol=hash_length
    python evaluate.py protocol=encryption data=dspspeech20

Writes metrics.json, PNG plots and report.md into the run directory (see conf/evaluate.yaml).
A thin shim: the Hydra main is :func:`speechret.apps.evaluate.main` (configs: ``conf/``).
"""

from speechret.apps.evaluate import main

if __name__ == "__main__":
    main()
