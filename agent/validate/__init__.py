"""The validator: every check declared by the compose file's labels, run concurrently under one deadline.

    python -m agent.validate --config <release>/resolved.json --json report.json --deadline 120

`runner` (the command), `catalog` (the label grammar), `checks` (retries under the deadline), `http`, `mcp`,
`prometheus` (one module per phase), `report` (results and their renderings, the one reader of a report file)
and `gate` (one summary line for the Pulumi ValidationGate).
"""
