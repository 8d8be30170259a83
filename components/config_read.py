"""Typed reads of raw stack config values that collect every problem with its key, value and what is allowed, and
the Secret that holds a secret value read."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.config_keys import BY_NAME, NAMESPACE, Key

NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
"""The text of a number key's value: what float() reads, less nan, inf and underscores."""


@dataclass(frozen=True)
class Secret:
    """A secret value; its repr never shows it. Components turn it into a Pulumi secret at the point of use."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret(***)" if self.value else "Secret()"


class ConfigError(Exception):
    """Bad stack config; `problems` holds one line per bad key (key, bad value, what is allowed)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid stack config:\n  " + "\n  ".join(problems))


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def close_match(name: str, known: list[str]) -> str | None:
    """The known key a typo most likely meant (same letters ignoring case, or one edit away)."""
    lowered = {k.lower(): k for k in known}
    if name.lower() in lowered:
        return lowered[name.lower()]
    for k in known:
        if abs(len(k) - len(name)) <= 2 and _edits(k.lower(), name.lower()) <= 2:
            return k
    return None


def _edits(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


class Reader:
    """Reads `devtools:<name>` values; every bad value adds a problem and yields the key's default."""

    def __init__(self, raw: Mapping[str, Any], secret_keys: set[str]) -> None:
        self.raw = dict(raw)
        self.secret_keys = secret_keys
        self.problems: list[str] = []

    def key(self, name: str) -> str:
        return f"{NAMESPACE}:{name}"

    def fail(self, name: str, value: Any, allowed: str) -> None:
        shown = "[secret]" if BY_NAME[name].secret else _show(value)
        self.problems.append(f"{self.key(name)}: {shown} is not allowed: {allowed}")

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def problems_about(self, name: str) -> bool:
        return any(p.startswith(self.key(name) + ":") for p in self.problems)

    def is_given(self, name: str) -> bool:
        """Set to something other than its default (the CLI passes Pulumi.yaml defaults as if they were set)."""
        full, key = self.key(name), BY_NAME[name]
        return full in self.raw and self.raw[full] not in (key.default, str(key.default), key.schema_default)

    def _value(self, name: str) -> Any:
        full = self.key(name)
        if full not in self.raw:
            return BY_NAME[name].default
        value = self.raw[full]
        if BY_NAME[name].secret and full not in self.secret_keys and value not in ("", {}, "{}"):
            self.problems.append(f"{full} holds a secret but is stored in plain text: set it with "
                                 f"`pulumi config set --secret {full} …` (or `--path --secret` for one entry)")
        return value

    def _key(self, name: str, type_: str) -> Key:
        """The key's row in the table; reading it as another type is a mistake in the program, not the config."""
        key = BY_NAME[name]
        if key.type != type_:
            raise TypeError(f"{self.key(name)} has type {key.type} in components/config_keys.py, but is read as "
                            f"{type_}")
        return key

    def string(self, name: str) -> str:
        """A string checked against the key's choices, pattern (when not empty) and rule, as the table says."""
        key = self._key(name, "string")
        value = self._value(name)
        if not isinstance(value, str):
            self.fail(name, value, "a string")
            return str(key.default)
        if key.choices and value not in key.choices:
            self.fail(name, value, key.rule())
            return str(key.default)
        reason = key.explain(value) if key.explain is not None and value else None
        if reason:
            self.fail(name, value, f"{key.allowed}: {reason}")
            return str(key.default)
        unmatched = bool(key.pattern and value and not re.fullmatch(key.pattern, value))
        if unmatched or (key.accepts is not None and not key.accepts(value)):
            self.fail(name, value, key.allowed)
            return str(key.default)
        return value

    def integer(self, name: str) -> int:
        """An integer (or its decimal text) within the key's range."""
        key = self._key(name, "integer")
        if key.range is None:
            raise TypeError(f"{self.key(name)} has no range in components/config_keys.py")
        lo, hi = key.range
        value = self._value(name)
        default = int(key.default)
        if isinstance(value, bool):
            self.fail(name, value, key.rule())
            return default
        if isinstance(value, str):
            if not re.fullmatch(r"-?\d+", value.strip()):
                self.fail(name, value, key.rule())
                return default
            value = int(value)
        if not isinstance(value, int) or not lo <= value <= hi:
            self.fail(name, value, key.rule())
            return default
        return value

    def number(self, name: str) -> float:
        """A number (or its decimal text: digits, a point, an exponent; never nan or inf) within the key's range.
        Pulumi.yaml declares a number key a string (components.config_keys.Key.schema_type), so text is the rule."""
        key = self._key(name, "number")
        if key.range is None:
            raise TypeError(f"{self.key(name)} has no range in components/config_keys.py")
        lo, hi = key.range
        value = self._value(name)
        default = float(key.default)
        if isinstance(value, bool):
            self.fail(name, value, key.rule())
            return default
        if isinstance(value, str):
            if not NUMBER.fullmatch(value.strip()):
                self.fail(name, value, key.rule())
                return default
            value = float(value)
        if not isinstance(value, int | float) or not lo <= value <= hi:
            self.fail(name, value, key.rule())
            return default
        return float(value)

    def boolean(self, name: str) -> bool:
        key = self._key(name, "boolean")
        value = self._value(name)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.fail(name, value, "true or false")
        return bool(key.default)

    def _json(self, name: str, value: Any, kind: type) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                self.fail(name, value, f"a JSON {kind.__name__} (set it with `pulumi config set --path`)")
                return kind()
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        """A list of strings, each matching the key's pattern."""
        key = self._key(name, "array")
        pattern, allowed = key.pattern or ".*", key.allowed
        value = self._json(name, self._value(name), list)
        if not isinstance(value, list):
            self.fail(name, value, f"a list of {allowed}")
            return ()
        bad = [v for v in value if not isinstance(v, str) or not re.fullmatch(pattern, v)]
        if bad:
            self.fail(name, bad[0], f"each entry must be {allowed}")
            return ()
        return tuple(value)

    def cidrs(self, name: str) -> tuple[str, ...]:
        """A list of CIDRs: the key's pattern, then a network with no host bits set."""
        entries = self.strings(name)
        good: list[str] = []
        for entry in entries:
            try:
                good.append(str(ipaddress.ip_network(entry, strict=True)))
            except ValueError as exc:
                self.fail(name, entry, f"a CIDR with no host bits set ({exc})")
        return tuple(good)

    def string_map(self, name: str) -> dict[str, str]:
        """An object of name → string, each name matching the key's pattern."""
        key = self._key(name, "object")
        key_pattern, allowed = key.pattern or ".*", key.allowed
        value = self._json(name, self._value(name), dict)
        if not isinstance(value, dict):
            self.fail(name, value, f"an object of {allowed}")
            return {}
        out: dict[str, str] = {}
        for k, v in value.items():
            if not re.fullmatch(key_pattern, str(k)):
                self.problems.append(f"{self.key(name)}.{k}: the name is not allowed: {allowed}")
            elif not isinstance(v, str):
                self.problems.append(f"{self.key(name)}.{k}: must be a string")
            else:
                out[str(k)] = v
        return out

    def private_cidr(self, name: str, value: str) -> str:
        """`value` (key `name`, read as a string) checked as a private IPv4 CIDR between /16 and /28; "" is not set."""
        if not value:
            return ""
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            self.fail(name, value, f"a private IPv4 CIDR ({exc})")
            return str(BY_NAME[name].default)
        if not net.is_private or not 16 <= net.prefixlen <= 28:
            self.fail(name, value, "a private IPv4 CIDR between /16 and /28")
        return value

    def private_key_file(self, name: str, path: str) -> str:
        """The private key in the file `path` that key `name` gives (read once, here), or "" with a problem when it
        cannot be read."""
        if not path:
            return ""
        try:
            text = Path(path).read_text()
        except OSError as exc:
            self.fail(name, path, f"a readable private key file ({exc.strerror})")
            return ""
        if "PRIVATE KEY" not in text:
            self.fail(name, path, "a file holding an OpenSSH or PEM private key")
            return ""
        return text
