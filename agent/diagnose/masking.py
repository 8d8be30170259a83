"""Masking of secret-looking values in environment variables, command lines and free text.

Standard library only (copied to hosts with agent.diagnose). All functions are pure.

Rules:
* an environment variable is secret when its NAME contains one of SECRET_NAME_PARTS (case-insensitive) or is a
  key of the project's secrets file (`names`: `QDRANT_URL`, a webhook, a DSN look harmless by name): its value
  becomes `***` (the name stays; an empty value stays empty);
* in any value, URL credentials `scheme://user:pass@host` become `scheme://user:***@host`;
* in a command line, the value of a secret-named flag (`--password=x`, `--token x`) and of a secret-named
  assignment inside an argument (`sh -c "API_KEY=x exec app"`) becomes `***`;
* in free text (log lines, health bodies), every known secret value of 4 characters or more is replaced by
  `***` wherever it appears, and URL credentials are masked as above.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

SECRET_NAME_PARTS = (
    "TOKEN",
    "KEY",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASS",
    "CREDENTIAL",
    "AUTH",
    "PRIVATE",
    "COOKIE",
    "SESSION",
)
MASK = "***"
MIN_FREE_TEXT_LEN = 4

# user may be empty (redis://:pass@host); the password runs to the last "@" before any "/" or blank.
_URL_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)(?P<password>[^\s/]+)@")
_FLAG = re.compile(r"(?P<flag>--?[A-Za-z][A-Za-z0-9_.\-]*)(?:=(?P<value>.*))?", re.DOTALL)
_VALUE = r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s\"']+)"
_INLINE_ASSIGN = re.compile(r"(?<![\w.\-])(?P<name>--?[A-Za-z][\w.\-]*|[A-Za-z_]\w*)=" + _VALUE)
_INLINE_FLAG = re.compile(r"(?<![\w.\-])(?P<name>--[A-Za-z][\w.\-]*)[ \t]+(?!-)" + _VALUE)


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(part in upper for part in SECRET_NAME_PARTS)


def url_passwords(text: str) -> list[str]:
    """The passwords of every `scheme://user:pass@host` in text."""
    return [m["password"] for m in _URL_CREDENTIALS.finditer(text)]


def mask_url_credentials(text: str) -> str:
    return _URL_CREDENTIALS.sub(lambda m: f"{m['head']}{MASK}@", text)


def mask_env_value(name: str, value: str, names: Collection[str] = ()) -> str:
    if value == "":
        return ""
    if is_secret_name(name) or name in names:
        return MASK
    return mask_url_credentials(value)


def mask_env_entry(entry: str, names: Collection[str] = ()) -> str:
    """One `NAME=value` entry as docker inspect lists it in Config.Env."""
    name, sep, value = entry.partition("=")
    if not sep:
        return mask_url_credentials(entry)
    return f"{name}={mask_env_value(name, value, names)}"


def mask_env(entries: Iterable[str], names: Collection[str] = ()) -> list[str]:
    return [mask_env_entry(entry, names) for entry in entries]


def env_secret_values(entries: Iterable[str], names: Collection[str] = ()) -> set[str]:
    """Values to hide in free text: those of secret variables (by name, or listed in `names`) and URL passwords
    in any variable."""
    found: set[str] = set()
    for entry in entries:
        name, _, value = entry.partition("=")
        if value and (is_secret_name(name) or name in names):
            found.add(value)
        found.update(url_passwords(value))
    return found


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def scan_inline(text: str) -> tuple[str, set[str]]:
    """Mask secret-named `NAME=value` / `--flag=value` / `--flag value` and URL credentials inside one string.

    Returns the masked string and the secret values it hid.
    """
    found: set[str] = set()

    def hide(m: re.Match[str]) -> str:
        if not is_secret_name(m["name"].lstrip("-")):
            return m[0]
        found.add(_unquote(m["value"]))
        return m[0][: m.start("value") - m.start(0)] + MASK

    masked = _INLINE_FLAG.sub(hide, _INLINE_ASSIGN.sub(hide, text))
    found.update(url_passwords(masked))
    found.discard("")
    found.discard(MASK)
    return mask_url_credentials(masked), found


def scan_args(args: Iterable[str]) -> tuple[list[str], set[str]]:
    """Mask a command line (entrypoint + cmd). Returns the masked argv and the secret values it hid."""
    masked: list[str] = []
    found: set[str] = set()
    value_is_secret = False
    for arg in args:
        if value_is_secret and not arg.startswith("-"):
            value_is_secret = False
            if arg:
                found.add(arg)
                masked.append(MASK)
            else:
                masked.append(arg)
            continue
        value_is_secret = False
        flag = _FLAG.fullmatch(arg)
        if flag is not None and is_secret_name(flag["flag"].lstrip("-")):
            value = flag["value"]
            if value is None:
                value_is_secret = True
                masked.append(arg)
            else:
                if value:
                    found.add(value)
                masked.append(f"{flag['flag']}={MASK if value else ''}")
            continue
        text, hidden = scan_inline(arg)
        masked.append(text)
        found |= hidden
    return masked, found


def mask_args(args: Iterable[str]) -> list[str]:
    return scan_args(args)[0]


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every known secret value (4 characters or more) by `***`, then mask URL credentials."""
    values = sorted({s for s in secrets if len(s) >= MIN_FREE_TEXT_LEN and s != MASK}, key=len, reverse=True)
    if values:
        text = re.sub("|".join(re.escape(v) for v in values), MASK, text)
    return mask_url_credentials(text)
