"""The secrets file: values reach the containers byte for byte through compose's env_file parser (read here by a
port of compose-go's, tests/unit/agent/compose_dotenv.py), what cannot be carried is refused naming the key and
never the value, and the values are what the agent masks."""

from __future__ import annotations

import pytest

from agent import secretfile as sf
from tests.unit.agent import compose_dotenv

PEM = ("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGd0ZXN0LWtleS1ub3QtYS1yZWFsLW9uZS0wMTIzNDU2\n"
       "-----END PRIVATE KEY-----\n")
HARD_VALUES = {
    "HASH": "p#ss",
    "HASH_SPACED": "p #ss",
    "DOLLAR": "pa$word",
    "DOLLARS": "pa$$word",
    "BRACED": "${HOME}x",
    "SINGLE": "it's",
    "DOUBLE": 'say "hi"',
    "LEADING_QUOTE": '"quoted"',
    "BACKSLASH": "back\\slash",
    "TRAILING_BACKSLASH": "ends\\",
    "ESCAPES": "\\n\\t\\0123\\$\\\"",
    "PEM": PEM,
    "CRLF": "a\r\nb",
    "SPACES": "  padded  ",
    "TAB": "a\tb",
    "EQUALS": "a=b==",
    "EMPTY": "",
    "UNICODE": "pässwörd\u2028next",
    "DSN": "postgres://app:s3cr3t@db:5432/app?sslmode=require",
    "WEBHOOK": "https://hooks.example/services/T0/B0/xyz?api_key=abc#frag",
}


def test_every_value_reaches_compose_byte_for_byte():
    """compose-go cuts unquoted values at ` #`, interpolates `$`, reads a leading quote as quoting and a newline as
    the next variable. Risk: `pa$word` arrives as `pa`, a PEM key injects its lines as variables into every
    container, a password with ` #` is cut short."""
    text = sf.render_secrets(HARD_VALUES)
    assert compose_dotenv.parse(text) == HARD_VALUES
    assert text.count("\n") == len(HARD_VALUES)  # one line per key: a value never starts a new variable


def test_values_are_written_double_quoted_with_five_escapes():
    assert sf.render_secrets({"B": 'say "hi" \\ $HOME\n', "A": "p#ss"}) == (
        'A="p#ss"\n'
        'B="say \\"hi\\" \\\\ $$HOME\\n"\n'
    )
    assert sf.render_secrets({"API_TOKEN": "abc=def", "DB_PASSWORD": ""}) == 'API_TOKEN="abc=def"\nDB_PASSWORD=""\n'


def test_the_file_reads_back_what_was_written():
    """The agent reads its own file to mask the values: it must read the very values compose hands over."""
    assert sf.parse_secrets(sf.render_secrets(HARD_VALUES)) == HARD_VALUES


def test_plain_lines_written_by_hand_are_taken_literally():
    text = "# comment\n\nAPI_TOKEN=abc=def\nDB_PASSWORD=\nPASS=p#ss $x it's\r\n"
    assert sf.parse_secrets(text) == {"API_TOKEN": "abc=def", "DB_PASSWORD": "", "PASS": "p#ss $x it's"}
    assert compose_dotenv.parse(sf.render_secrets(sf.parse_secrets(text)))["PASS"] == "p#ss $x it's"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lower=hunter2", "secrets line 1: expected KEY=VALUE"),
        ("A=1\nno-equals-hunter2", "secrets line 2: expected KEY=VALUE"),
        ("CICD_IMAGE=hunter2", "secrets line 1: CICD_IMAGE is reserved"),
        ('A="hunter2', 'secrets line 1 \\(A\\): a double-quoted value must end with `"`'),
        ('A="hunter2\\"', 'secrets line 1 \\(A\\): a double-quoted value must end with `"`'),
        ('A="hunter2$x"',
         "secrets line 1 \\(A\\): cannot read the double-quoted value \\(write a `\\$` as `\\$\\$`\\)"),
        ('A="hunter2\\t"', "secrets line 1 \\(A\\): cannot read the double-quoted value \\(a backslash may only"),
        ('A="hun"ter2"', "secrets line 1 \\(A\\): cannot read the double-quoted value \\(end the value"),
        ("B=1\nA=hunter2\0x", "secrets line 2: A: the value holds a NUL character"),
    ],
)
def test_bad_secrets_name_the_line_and_key_never_the_value(text, expected):
    with pytest.raises(ValueError, match=expected) as info:
        sf.parse_secrets(text)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(("value", "expected"), [
    ("hunter2\0", "KEY: the value holds a NUL character, which no environment variable can carry"),
    ("hunter2\ud800", "KEY: the value is not valid Unicode text (a lone surrogate), which the file cannot hold"),
])
def test_a_value_no_container_can_hold_is_refused_naming_the_key(value, expected):
    """The program checks appSecrets with the same rule, so the update stops before anything reaches a host."""
    assert sf.value_problem("KEY", value) == expected
    with pytest.raises(ValueError) as info:
        sf.render_secrets({"KEY": value})
    assert str(info.value) == expected


def test_the_masker_hides_values_and_each_line_of_a_multi_line_one():
    """Logs print a PEM key line by line (and prefix each line), so whole-value matching alone would miss it."""
    mask = sf.Masker(["s3cr3t-token", PEM, "on"])
    logged = "web-1  | MC4CAQAwBQYDK2VwBCIEIGd0ZXN0LWtleS1ub3QtYS1yZWFsLW9uZS0wMTIzNDU2\nTOKEN=s3cr3t-token on"
    assert mask(logged) == "web-1  | ***\nTOKEN=*** on"
    assert mask.deep({"reason": ["x s3cr3t-token"], "n": 3}) == {"reason": ["x ***"], "n": 3}
    assert sf.Masker()("s3cr3t-token") == "s3cr3t-token"


def test_a_secrets_file_the_agent_cannot_parse_is_still_masked():
    """A hand-edited file with a broken line must not switch masking off."""
    assert sf.read_secrets_file('A="unterminated\nB=plain-value\n') == {"A": '"unterminated', "B": "plain-value"}
