"""search.py — query an encrypted speech library by spoken example; = ``speechret search``.

Examples (``ckpt_path=`` is the library's checkpoint: its manifest keeps only the sha256 and file
name; another checkpoint is refused unless ``force=true``). Nothing is written unless
``save_run=true`` (then a run directory logs/search/runs/<time>)::

    python search.py library=libraries/dsp ckpt_path=<best.ckpt> queries=query.wav use_key=false  # keyless: opaque ids
    python search.py library=libraries/dsp ckpt_path=<best.ckpt> queries=queries/ mode=threshold threshold=0.2
        format=json cipher.key_material.key_file=libraries/dsp.key   # with the key: corpus ids
    python search.py library=libraries/b ckpt_path=<best.ckpt> queries=q.wav mode=two_stage stage2=threshold threshold=0.2
    python search.py library=libraries/c ckpt_path=<best.ckpt> queries=q.wav mode=full_speech gamma=0.31  # paper C, <= γ
    python search.py library=libraries/dsp ckpt_path=<best.ckpt> queries=q.wav decrypt=hits/
        cipher.key_material.key_file=libraries/dsp.key   # decrypting the hits needs the key

A thin shim: the Hydra main is :func:`speechret.apps.search.main` (configs: ``conf/``).
"""

from speechret.crypto.keys import cli_guard

if __name__ == "__main__":
    # Raw key material on the command line (key_hex=, passphrase=, ...) is refused here, before
    # Hydra composes and writes .hydra/*.yaml; the message names the parameter, never the value.
    cli_guard()
    from speechret.apps.search import main

    main()
