from opo_theory.cli import main

raise SystemExit(main())
