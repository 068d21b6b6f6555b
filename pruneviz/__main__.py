from pruneviz.cli import main

raise SystemExit(main())
