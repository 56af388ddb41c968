#!/usr/bin/env python3
"""Run the pyrt reference server: ``python serve.py --help``."""

import sys

from pyrt.server.cli import main

if __name__ == "__main__":
    sys.exit(main())
