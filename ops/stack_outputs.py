"""The values ops.cli takes from a stack's outputs, checked before use: each ends up in ssh's argv (user, address,
port), known_hosts (the host key), a remote command (root, project) or a local path (`collect --out DIR/<name>`).
Outputs are written by whoever can run `pulumi up` on the stack (or edit its state), so a crafted `sshUser` such as
`-oProxyCommand=…` would run a command on this machine and a crafted host name would write outside --out. Every
refusal names the output and the value.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from agent.release import SERVICE_NAME
from components.config_keys import BY_NAME
from components.ssh_keys import public_key_problem

USER = re.compile(str(BY_NAME["sshUser"].pattern))
ROOT = re.compile(str(BY_NAME["hostRoot"].pattern))
DNS_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*")
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class OutputError(ValueError):
    """A stack output ops.cli would use holds something it must not use."""


def _refuse(stack: str, output: str, value: Any, what: str) -> OutputError:
    return OutputError(f"stack {stack}'s output {output} {json.dumps(value)} is not {what}: refusing to use it")


def user(stack: str, value: Any, output: str = "hosts.sshUser") -> str:
    if not isinstance(value, str) or not USER.fullmatch(value):
        raise _refuse(stack, output, value, BY_NAME["sshUser"].allowed)
    return value


def address(stack: str, output: str, value: Any) -> str:
    """An IP address or a DNS name: never something ssh would read as an option."""
    if isinstance(value, str):
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            if DNS_NAME.fullmatch(value):
                return value
    raise _refuse(stack, output, value, "an IP address or a host name")


def port(stack: str, output: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value \
            or not 1 <= value <= 65535:
        raise _refuse(stack, output, value, "a port 1-65535")
    return int(value)


def name(stack: str, output: str, value: Any) -> str:
    """A host name as a single path component (no `/`, never `.` or `..`)."""
    if not isinstance(value, str) or not PLAIN_NAME.fullmatch(value):
        raise _refuse(stack, output, value, "a plain name (letters, digits, '.', '_', ':' or '-', starting with a "
                                            "letter or digit)")
    return value


def root(stack: str, value: Any, output: str = "hosts.root") -> str:
    if not isinstance(value, str) or not ROOT.fullmatch(value) or ".." in value.split("/"):
        raise _refuse(stack, output, value, f"{BY_NAME['hostRoot'].allowed} (without '..')")
    return value


def project(stack: str, value: Any, output: str = "color") -> str:
    """A compose project on the hosts (the stack's color, the data tier's project): the host agent's own rule."""
    if not isinstance(value, str) or not SERVICE_NAME.match(value):
        raise _refuse(stack, output, value, "a project name (lowercase letters, digits, '_' or '-', starting with a "
                                             "letter or digit)")
    return value


def host_key(stack: str, value: Any, output: str = "hosts.sshHostKey") -> str:
    """A pinned host key (it becomes a known_hosts line), or "" when the stack pins none."""
    if value in (None, ""):
        return ""
    problem = public_key_problem(value) if isinstance(value, str) else "not a string"
    if problem:
        raise OutputError(f"stack {stack}'s output {output} is not an OpenSSH public key ({problem}): "
                          "refusing to use it")
    return str(value)
