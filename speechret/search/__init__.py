"""Matchers: grouped 27-bit sliding matching (paper C §4.4).

Importing this package sets the ``faiss.loader`` logger to WARNING before any speechret module
imports ``faiss``: its seven INFO lines ("Loading faiss with AVX2 support.", "Could not load
library with AVX2 support ...", ...) otherwise open every index / search / evaluate run.
"""

import logging

logging.getLogger("faiss.loader").setLevel(logging.WARNING)
