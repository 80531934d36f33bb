import sys

from qeguard.cli.main import main

sys.exit(main())
