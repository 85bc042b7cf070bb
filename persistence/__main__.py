"""``python -m persistence ...``: the command line of :mod:`persistence.cli.commands`."""
import sys

from persistence.cli.commands import main

if __name__ == "__main__":
    sys.exit(main())
