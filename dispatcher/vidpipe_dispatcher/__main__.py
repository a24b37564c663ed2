"""`python -m vidpipe_dispatcher`."""

import sys

from vidpipe_dispatcher.main import main

sys.exit(main())
