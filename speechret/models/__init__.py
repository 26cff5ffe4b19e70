"""Models: pure ``nn.Module`` architectures in :mod:`speechret.models.components` (the output
convention :class:`ModelOutput` is documented there) and the LightningModules that train them.

Only the architectures are re-exported here so that importing ``speechret.models`` stays cheap
(no Lightning import) for indexing and search.
"""

from .components import *  # noqa: F401,F403 - the architectures and ModelOutput
from .components import __all__  # noqa: F401
