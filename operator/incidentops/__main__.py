"""``python -m incidentops`` is the ``incidentops`` command."""

import sys

from incidentops.cli import main

sys.exit(main())
