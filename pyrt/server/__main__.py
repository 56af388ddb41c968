"""``python -m pyrt.server``: the same command line as ``serve.py`` (``--help`` lists the options)."""

import sys

from pyrt.server.cli import main

if __name__ == "__main__":
    sys.exit(main())
