from modelship.cli import main

raise SystemExit(main())
