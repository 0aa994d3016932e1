from ncodec.app.cli import main

raise SystemExit(main())
