"""``python -m fallthrough.cli``: the same as the ``fallthrough`` console script."""

from . import main

main()
