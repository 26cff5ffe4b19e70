"""speechret: privacy-preserving content-based speech retrieval with deep hashing.

The reference implementation of three papers (see ``../shared/docs/DESIGN.md``):

* A (000): LSTM deep hashing over Log-Mel / MFCC, 4D hyperchaotic speech cipher;
* B (001): CNN / CRNN deep hashing with a category code and "two-stage" retrieval, Rossler cipher;
* C (002): time-sequence speech visualization (SVS), 3D CNN-BiLSTM / BiConvLSTM trained with CTC
  over a 27-class Mandarin pronunciation model, grouped 27-bit sliding matching.
"""

__version__ = "0.1.0"

# ${speechret_root:} (paths.root_dir), ${speechret_if:...} and ${speechret_config_groups:} for every
# config composed after `import speechret` (speechret/config.py)
from speechret.config import register_resolvers as _register_resolvers  # noqa: E402

_register_resolvers()
