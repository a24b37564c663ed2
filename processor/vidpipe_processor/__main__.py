"""`python -m vidpipe_processor`: the container's entrypoint."""

from vidpipe_processor.main import main

raise SystemExit(main())
