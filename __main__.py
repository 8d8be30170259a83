"""The devtools stack: read the config once, declare the components, export the outputs (no logic here).

    pulumi up --stack prod      # see README.md; `components/program.py` is the flow
"""

from __future__ import annotations

import pulumi

from components.entry import load
from components.program import declare

cfg, catalog, env = load()
for name, value in declare(cfg, catalog, env).items():
    pulumi.export(name, value)
