from vidpipe_cli.main import main

raise SystemExit(main())
