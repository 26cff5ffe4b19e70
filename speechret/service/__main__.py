"""``python -m speechret.service library=<dir> tokens.read_file=... tokens.write_file=...``
(see :func:`speechret.service.main`)."""

import sys

from speechret.service import main

sys.exit(main(sys.argv[1:]))
