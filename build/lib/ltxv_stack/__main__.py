"""`python -m ltx_core generate ...`: see ltx_core.cli."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
