"""Code that runs on a host or a laptop. Never imports pulumi.

The host-side modules (hostagent, rollout, compose_output, hoststore, hoststatus, compose_cmd, catalog,
diagnose, masking, diagnose_report, lbctl, promconf, localenv) use the python3 standard library only: the whole
package is copied to each host next to the release (tests/unit/test_stdlib_only.py keeps it so).
"""
