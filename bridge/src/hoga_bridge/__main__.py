import sys

from hoga_bridge.server import main

sys.exit(main())
