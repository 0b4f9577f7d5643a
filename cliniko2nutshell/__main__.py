from cliniko2nutshell.cli import main

raise SystemExit(main())
