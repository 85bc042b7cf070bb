"""``python -m persistence ...``: the command line of :mod:`persistence.cli.commands`."""
import sys

from persistence.cli.commands import main

sys.exit(main())
