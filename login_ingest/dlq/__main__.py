"""`python -m login_ingest.dlq inspect|redrive ...`: the dead-letter queue tooling."""

import os
import sys

from login_ingest.dlq.cli import main

try:
    code = main()
    sys.stdout.flush()
except BrokenPipeError:
    # `inspect | head`: the reader left early. The messages were made visible again on the
    # way out; only Python's own flush at exit would still complain.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    code = 1
sys.exit(code)
