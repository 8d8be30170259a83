"""A line-for-line port of compose-go's env_file parser (dotenv/parser.go, dotenv/godotenv.go expandVariables and
template/template.go's default pattern; compose-go v2.9, what compose 2.40 runs), so the fast tier can read a
rendered secrets file the way compose will. The e2e tier checks the real compose (tests/e2e/test_secrets.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable

_ESCAPE_SEQ = re.compile(r'(\\(?:[abcfnrtv$"\\]|0\d{0,3}))')
_EXPORT = re.compile(r"^export\s+")
_TEMPLATE = re.compile(r"\$(?i:(?P<escaped>\$)|(?P<named>[_a-z][_a-z0-9]*)|\{(?:(?P<braced>[_a-z][_a-z0-9]*"
                       r"(?::?[-+?](.*))?)\}|(?P<invalid>)))")
_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"'}


def _is_space(c: str) -> bool:
    """isSpace: a space but not a line break."""
    return c in "\t\v\f\r \x85\xa0"


def _unicode_space(c: str) -> bool:
    return c.isspace()


def _expand_escapes(value: str) -> str:
    def one(m: re.Match[str]) -> str:
        match = m[0]
        if match == "\\$":
            return "$$"
        if match.startswith("\\0"):
            match = "\\" + match[2:]  # Go's octal escapes have no leading 0: `\0123` is read as `\123`
            digits = match[1:]
            if len(digits) == 3 and all(d in "01234567" for d in digits) and int(digits, 8) <= 255:
                return chr(int(digits, 8))
            return match  # strconv.UnquoteChar refuses it: the rewritten match is kept
        c = match[1]
        return _GO_ESCAPES.get(c, match)  # `\c` and `\$` are not Go escapes (`\$` handled above)

    return _ESCAPE_SEQ.sub(one, value)


def _expand_variables(value: str, env: dict[str, str], lookup: Callable[[str], str | None]) -> str:
    def one(m: re.Match[str]) -> str:
        if m["escaped"] is not None:
            return "$"
        name = m["named"] or m["braced"]
        if name is None:
            raise ValueError(f"Invalid template: {value!r}")
        if m["braced"] is not None and any(op in name for op in ":-+?"):
            raise NotImplementedError("default/required substitutions are not used by these tests")
        found = lookup(name)
        return found if found is not None else env.get(name, "")

    return _TEMPLATE.sub(one, value)


def parse(src: str, lookup: Callable[[str], str | None] = lambda _k: None) -> dict[str, str]:
    """compose-go dotenv.UnmarshalWithLookup."""
    src = src.removeprefix("\ufeff")
    out: dict[str, str] = {}
    cutset = src
    while True:
        cutset = _statement_start(cutset)
        if cutset == "":
            break
        key, left, inherited = _key_name(cutset)
        if " " in key:
            raise ValueError("key cannot contain a space")
        if inherited:
            found = lookup(key)
            if found is not None:
                out[key] = found
            cutset = left
            continue
        value, left = _value(left, out, lookup)
        out[key] = value
        cutset = left
    return out


def _statement_start(src: str) -> str:
    pos = next((i for i, c in enumerate(src) if not _unicode_space(c)), -1)
    if pos == -1:
        return ""
    src = src[pos:]
    if src[0] != "#":
        return src
    nl = src.find("\n")
    return "" if nl == -1 else _statement_start(src[nl:])


def _key_name(src: str) -> tuple[str, str, bool]:
    if _EXPORT.match(src):
        src = src.removeprefix("export").lstrip("\t\v\f\r \x85\xa0")
    key, offset, inherited = "", 0, False
    for i, c in enumerate(src):
        if _is_space(c):
            continue
        if c in "=:\n":
            key, offset, inherited = src[:i], i + 1, c == "\n"
            break
        if c in "_.-[]" or c.isalpha() or c.isdigit():
            continue
        raise ValueError(f"unexpected character {c!r} in variable name")
    key = key.rstrip()
    return key, src[offset:].lstrip("\t\v\f\r \x85\xa0"), inherited


def _value(src: str, env: dict[str, str], lookup: Callable[[str], str | None]) -> tuple[str, str]:
    if not src or src[0] not in "'\"":
        value, _, rest = src.partition("\n")
        value = value.split(" #", 1)[0].rstrip()
        return _expand_variables(value, env, lookup), rest
    quote = src[0]
    escaped = False
    chars: list[str] = []
    for i in range(1, len(src)):
        c = src[i]
        if c != quote:
            if not escaped and c == "\\":
                escaped = True
                continue
            if escaped:
                escaped = False
                chars.append("\\")
            chars.append(c)
            continue
        if escaped:
            escaped = False
            chars.append(c)
            continue
        value = "".join(chars)
        if quote == '"':
            value = _expand_variables(_expand_escapes(value), env, lookup)
        return value, src[i + 1:]
    raise ValueError("unterminated quoted value")
