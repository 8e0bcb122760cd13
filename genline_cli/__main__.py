import sys

from genline_cli.main import main

sys.exit(main())
