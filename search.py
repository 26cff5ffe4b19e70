"""search.py — query an encrypted speech library by spoken example.

Examples (``ckpt=`` is the library's checkpoint: its manifest keeps only the sha256 and file name;
another checkpoint is refused unless ``force=true``)::

    python search.py library=libraries/dsp ckpt=<best.ckpt> queries=query.wav use_key=false  # keyless: opaque ids
    python search.py library=libraries/dsp ckpt=<best.ckpt> queries=queries/ mode=threshold threshold=0.2
        format=json cipher.key_material.key_file=libraries/dsp.key   # with the key: corpus ids
    python search.py library=libraries/b ckpt=<best.ckpt> queries=q.wav mode=two_stage stage2=threshold threshold=0.2
    python search.py library=libraries/c ckpt=<best.ckpt> queries=q.wav mode=full_speech gamma=0.31  # paper C, <= γ
    python search.py library=libraries/dsp ckpt=<best.ckpt> queries=q.wav decrypt=hits/
        cipher.key_material.key_file=libraries/dsp.key   # decrypting the hits needs the key
"""

import hydra
from omegaconf import DictConfig

from speechret.crypto.keys import cli_guard


@hydra.main(version_base="1.3", config_path="conf", config_name="search")
def main(cfg: DictConfig) -> None:
    from speechret.apps.search import run_search  # imported here: the key guard below runs in a second
    from speechret.errors import SpeechretError

    try:
        run_search(cfg)
    except SpeechretError as exc:  # a clear message, not a traceback under Hydra's override echo
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    # Raw key material on the command line (key_hex=, passphrase=, ...) is refused here, before
    # Hydra composes and writes .hydra/*.yaml; the message names the parameter, never the value.
    cli_guard()
    main()
