"""`python -m vidpipe_operator`."""

import sys

from vidpipe_operator.main import main

sys.exit(main())
