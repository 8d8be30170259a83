"""The host agent: the only package shipped to hosts (uploaded to <root>/code/agent/ with every release).

Standard library only, so it runs under a fresh droplet's python3; `agent/validate/` may also use httpx (installed
in the host venv from agent/requirements.txt). Never imports pulumi, `components`, `ops` or `standin`
(tests/unit/test_rooms.py holds every module to that).
"""
