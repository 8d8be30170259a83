import sys

from agent.diagnose.collect import main

sys.exit(main())
