"""`python -m fastt2i` runs the command-line tool."""

import sys

from fastt2i.cli import main

sys.exit(main())
