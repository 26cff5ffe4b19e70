"""index.py — add a corpus to an encrypted speech library (or rebuild / fsck it).

Examples::

    python index.py ckpt=logs/train/runs/<run>/checkpoints/epoch_005.ckpt create_key=true
    python index.py ckpt=... data=dspspeech20 data.root=../shared/data/dspspeech20 library=libraries/dsp
        create_key=true cipher.key_material.key_file=libraries/dsp.key [keyed_codes=true] [force=true]
    python index.py command=fsck library=libraries/dsp          # no key; deep=true (with the key) authenticates
    python index.py command=repair library=libraries/dsp        # also: command=rebuild, command=remove ids=[...]
"""

import hydra
from omegaconf import DictConfig

from speechret.crypto.keys import cli_guard


@hydra.main(version_base="1.3", config_path="conf", config_name="index")
def main(cfg: DictConfig) -> None:
    from speechret.apps.index import run_index  # imported here: the key guard below runs in a second
    from speechret.errors import SpeechretError

    try:
        run_index(cfg)
    except SpeechretError as exc:  # a clear message, not a traceback under Hydra's override echo
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    # Raw key material on the command line (key_hex=, passphrase=, ...) is refused here, before
    # Hydra composes and writes .hydra/*.yaml; the message names the parameter, never the value.
    cli_guard()
    main()
