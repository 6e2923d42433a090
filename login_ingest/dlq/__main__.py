"""`python -m login_ingest.dlq inspect|redrive ...`: the dead-letter queue tooling."""

import sys

from login_ingest.dlq.cli import main

sys.exit(main())
