"""Diagnostics of a compose project's containers with every secret masked.

    python -m agent.diagnose <service|all> --project green --out DIR

`collect` (docker reads and the bundle), `report` (its data and text rendering), `masking` (the rules).
"""
