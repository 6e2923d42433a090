"""`python -m login_ingest.local`: the main job on this machine."""

import sys

from login_ingest.local.run import main

sys.exit(main())
