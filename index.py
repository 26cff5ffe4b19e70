"""index.py — add a corpus to an encrypted speech library (or rebuild / fsck it); = ``speechret index``.

Examples::

    python index.py ckpt_path=logs/<task_name>/runs/<run>/checkpoints/epoch_005.ckpt create_key=true
    python index.py ckpt_path=... data=dspspeech20 data.root=../shared/data/dspspeech20 library=libraries/dsp
        create_key=true cipher.key_material.key_file=libraries/dsp.key [keyed_codes=true] [force=true]
    python index.py command=fsck library=libraries/dsp          # no key; deep=true (with the key) authenticates
    python index.py command=repair library=libraries/dsp        # also: command=rebuild, command=remove ids=[...]

A thin shim: the Hydra main is :func:`speechret.apps.index.main` (configs: ``conf/``).
"""

from speechret.crypto.keys import cli_guard

if __name__ == "__main__":
    # Raw key material on the command line (key_hex=, passphrase=, ...) is refused here, before
    # Hydra composes and writes .hydra/*.yaml; the message names the parameter, never the value.
    cli_guard()
    from speechret.apps.index import main

    main()
