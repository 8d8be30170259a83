import sys

from agent.validate.runner import main

sys.exit(main())
