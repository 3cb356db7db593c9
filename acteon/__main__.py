"""``python -m acteon``: the ``acteon`` command line."""

import sys

from acteon.cli import main

sys.exit(main())
