import sys

from spse_simulator.app import main

sys.exit(main())
