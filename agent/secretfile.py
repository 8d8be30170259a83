"""The project's secrets file (standard library only): what `hostagent secrets` reads, how it writes each value so
that compose's env_file parser hands it to the containers byte for byte, and the values to mask in anything the
agent prints or records.

Compose v2 reads env_file with compose-go's dotenv parser. An unquoted value is cut at ` #`, trimmed and
interpolated (`$x`), and ends at the line's end; inside single quotes a backslash before a quote is eaten; inside
double quotes escape sequences are expanded and `$` is interpolated, except `$$`, which is one `$`. So every value
is written double-quoted with exactly these escapes, all of which compose-go turns back into the original:

    \\  ->  \\\\        "  ->  \\"        $  ->  $$        newline  ->  \\n        carriage return  ->  \\r

(compose-go's double-quoted path: a backslash keeps the next character, `\\"` drops its backslash, then `\\\\`,
`\\n`, `\\r` are expanded, then `$$` becomes `$`). Everything else is written as it is. A value that no
environment variable can hold (a NUL character) is refused naming its key, never its value.

The same text is the input of `hostagent secrets` (stdin) and the file on the host, one `KEY=VALUE` per line:
VALUE is either that double-quoted form, or a plain value taken literally to the end of its line (trimmed), for
files written by hand. Blank lines and `#` comments are allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from agent.release import ENV_KEY, is_reserved

_ENCODE = {"\\": "\\\\", '"': '\\"', "$": "$$", "\n": "\\n", "\r": "\\r"}
_DECODE = {"\\\\": "\\", '\\"': '"', "$$": "$", "\\n": "\n", "\\r": "\r"}
_HINTS = {"$": "write a `$` as `$$`", '"': 'end the value with `"` and escape a `"` inside it as `\\"`',
          "\\": "a backslash may only start \\\\, \\\", \\n or \\r"}
_TOKEN = re.compile(r'\\\\|\\"|\$\$|\\n|\\r|\\|\$|"')
MIN_MASK_LEN = 4
"""Values (and lines of multi-line values) shorter than this are not masked in free text: hiding every `1` or
`on` in a log would make it unreadable and protects nothing."""
MASK = "***"


def value_problem(key: str, value: str) -> str | None:
    """Why `value` cannot be handed to a container as it is (naming the key, never the value), or None."""
    if "\0" in value:
        return f"{key}: the value holds a NUL character, which no environment variable can carry"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{key}: the value is not valid Unicode text (a lone surrogate), which the file cannot hold"
    return None


def encode_value(value: str) -> str:
    """The double-quoted form compose-go reads back as exactly `value`."""
    return '"' + "".join(_ENCODE.get(c, c) for c in value) + '"'


def render_secrets(secrets: Mapping[str, str]) -> str:
    """The secrets file: sorted `KEY="…"` lines. Raises ValueError (naming the key) for a value it cannot hold."""
    for key in sorted(secrets):
        problem = value_problem(key, secrets[key])
        if problem:
            raise ValueError(problem)
    return "".join(f"{k}={encode_value(secrets[k])}\n" for k in sorted(secrets))


def _decode(body: str, where: str) -> str:
    """The inside of a double-quoted value written with the escapes above; anything else is an error."""
    out: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(body):
        out.append(body[pos:m.start()])
        if m[0] not in _DECODE:
            raise ValueError(f"{where}: cannot read the double-quoted value ({_HINTS[m[0]]})")
        out.append(_DECODE[m[0]])
        pos = m.end()
    out.append(body[pos:])
    return "".join(out)


def parse_secrets(text: str) -> dict[str, str]:
    """KEY=VALUE lines, as `hostagent secrets` receives them and the secrets file holds them.

    Errors name the line and the key, never the value.
    """
    secrets: dict[str, str] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not ENV_KEY.match(key):
            raise ValueError(f"secrets line {number}: expected KEY=VALUE with KEY matching {ENV_KEY.pattern}")
        if is_reserved(key):
            raise ValueError(f"secrets line {number}: {key} is reserved for the release itself")
        where = f"secrets line {number} ({key})"
        if value.startswith('"'):
            if len(value) < 2 or not value.endswith('"') or _unescaped_quote_at_end(value[1:-1]):
                raise ValueError(f'{where}: a double-quoted value must end with `"` on its own line (a newline '
                                 "inside it is written \\n)")
            value = _decode(value[1:-1], where)
        problem = value_problem(key, value)
        if problem:
            raise ValueError(f"secrets line {number}: {problem}")
        secrets[key] = value
    return secrets


def _unescaped_quote_at_end(body: str) -> bool:
    """True when the closing quote is escaped (`"…\\"`): an odd run of backslashes ends the body."""
    run = len(body) - len(body.rstrip("\\"))
    return run % 2 == 1


def read_secrets_file(text: str) -> dict[str, str]:
    """The host's secrets file for masking: best effort, never raising (a line it cannot read counts with its
    whole text after `=` as the value, which is what a hand-edited file most likely meant)."""
    try:
        return parse_secrets(text)
    except ValueError:
        found: dict[str, str] = {}
        for raw in text.split("\n"):
            key, sep, value = raw.strip().partition("=")
            if sep and ENV_KEY.match(key):
                found[key] = value
        return found


def mask_values(values: Iterable[str]) -> list[str]:
    """What to hide in free text for these secret values: each value, and each line of a multi-line one (a log
    prints a PEM key line by line), longest first, none shorter than MIN_MASK_LEN."""
    found: set[str] = set()
    for value in values:
        found.add(value)
        found.update(line.strip() for line in value.splitlines())
    return sorted((v for v in found if len(v) >= MIN_MASK_LEN and v != MASK), key=lambda v: (-len(v), v))


class Masker:
    """Replaces every known secret value in a text by `***`."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values = mask_values(values)
        self._pattern = re.compile("|".join(re.escape(v) for v in self.values)) if self.values else None

    def __call__(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(MASK, text)

    def deep(self, value: Any) -> Any:
        """Masks every string inside a JSON-like value (dicts, lists, strings)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.deep(v) for v in value]
        return value
