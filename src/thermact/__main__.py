"""Allow ``python -m thermact``."""

from __future__ import annotations

import sys

from thermact.cli import main

sys.exit(main())
