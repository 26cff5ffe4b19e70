"""``python -m speechret.data.synthetic OUT_DIR [--speakers N] ...`` (see :mod:`.cli`)."""

from speechret.data.synthetic.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
