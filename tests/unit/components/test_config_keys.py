"""The key table (components/config_keys.py) is the one place a key's checks live: every row is consistent, every
row is read, and no read spells a check of its own."""

from __future__ import annotations

import ast
import re

import pytest

from components.config_keys import BY_NAME, KEYS, Key, number_text
from components.config_read import Reader
from tests.unit.components.stack_configs import ROOT

READS = ("string", "integer", "number", "boolean", "strings", "cidrs", "string_map")


def _reads() -> list[ast.Call]:
    """Every `r.<read>(…)` call in the modules that read the config."""
    calls: list[ast.Call] = []
    for name in ("config.py", "config_rules.py"):
        tree = ast.parse((ROOT / "components" / name).read_text())
        calls += [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                  and isinstance(node.func, ast.Attribute) and node.func.attr in READS
                  and isinstance(node.func.value, ast.Name) and node.func.value.id == "r"]
    return calls


def test_every_read_names_only_the_key():
    """A pattern, range or choice spelled at a call site would drift from the table (and from docs/config.md,
    which is generated from it): reads take the key name and nothing else."""
    calls = _reads()
    assert len(calls) >= len(KEYS)
    spelled = [ast.unparse(c) for c in calls if len(c.args) != 1 or c.keywords
               or not isinstance(c.args[0], ast.Constant)]
    assert spelled == []


def test_every_key_in_the_table_is_read_and_every_read_is_in_the_table():
    """A row nobody reads is a documented key that does nothing; a read of a missing row fails every stack."""
    read = {c.args[0].value for c in _reads() if isinstance(c.args[0], ast.Constant)}
    assert read == set(BY_NAME)


@pytest.mark.parametrize("key", KEYS, ids=lambda k: k.name)
def test_each_row_is_consistent(key: Key):
    """The default must pass the key's own checks (or every stack that leaves it unset is refused), integers
    need a range, a pattern or rule needs its words (the error message and docs/config.md show them), and checks
    only of the kinds that apply to the type."""
    if key.type == "integer":
        assert key.range is not None
        assert key.range[0] <= key.default <= key.range[1]
        assert key.rule() == f"an integer {key.range[0]}-{key.range[1]}"
    elif key.type == "number":
        assert key.range is not None and isinstance(key.default, float)
        assert key.range[0] <= key.default <= key.range[1]
        assert key.rule().startswith("a number ")
        assert float(key.schema_default) == key.default and key.schema_type == "string"
    else:
        assert key.range is None
    if key.choices:
        assert key.type == "string" and key.pattern is None and key.accepts is None
        assert key.default in key.choices
    if key.pattern is not None or key.accepts is not None or key.explain is not None:
        assert key.allowed, "a pattern or rule needs its words"
        assert key.type in ("string", "array", "object")
    else:
        assert key.allowed == ""
    if key.pattern is not None:
        re.compile(key.pattern)
        if key.type == "string" and key.default:
            assert re.fullmatch(key.pattern, key.default)
    if key.accepts is not None:
        assert key.accepts(key.default)
    if key.explain is not None:
        assert key.type == "string" and (key.default == "" or key.explain(key.default) is None)
    if key.type in ("array", "object"):
        assert key.pattern is not None, "entries or names need a pattern"
    assert key.meaning and key.type in ("string", "integer", "number", "boolean", "array", "object")
    if key.type != "number":
        assert (key.schema_type, key.schema_default) == (key.type, key.default)


def test_reading_a_key_as_another_type_is_a_program_error():
    """A row whose type and its read disagree is a bug in the program, not in anyone's stack file: it must fail
    loudly, naming the key, instead of reporting the operator's value as wrong."""
    reader = Reader({}, set())
    with pytest.raises(TypeError) as err:
        reader.integer("region")
    assert str(err.value) == "devtools:region has type string in components/config_keys.py, but is read as integer"
    with pytest.raises(TypeError, match="devtools:hostCount has type integer"):
        reader.string("hostCount")
    assert reader.problems == []


def test_the_error_message_uses_the_tables_words():
    """What the operator reads is what the table (and docs/config.md) says, word for word."""
    reader = Reader({"devtools:region": "New York", "devtools:hostCount": "0", "devtools:color": "pink",
                     "devtools:existingHosts": '["a b"]'}, set())
    assert (reader.string("region"), reader.integer("hostCount"), reader.string("color")) == ("nyc3", 1, "green")
    assert reader.strings("existingHosts") == ()
    assert reader.problems == [
        'devtools:region: "New York" is not allowed: a region slug such as nyc3, fra1, sgp1',
        'devtools:hostCount: 0 is not allowed: an integer 1-10',
        'devtools:color: "pink" is not allowed: one of green, blue',
        'devtools:existingHosts: "a b" is not allowed: each entry must be address[:port] such as 127.0.0.1:2222',
    ]


def test_a_number_key_reads_decimal_text_within_its_range():
    """Pulumi stores a number key as text (Pulumi.yaml declares it a string: the project schema has no number
    type), so the text is the rule: decimals and exponents within the range pass; nan, inf, a value out of range
    or a boolean would slip past a bare float() and are refused with the table's words and the default kept."""
    good = Reader({"devtools:analysisMaxErrorRatio": "0.05", "devtools:analysisMaxP95Seconds": "2.5e-1"}, set())
    assert (good.number("analysisMaxErrorRatio"), good.number("analysisMaxP95Seconds")) == (0.05, 0.25)
    assert Reader({}, set()).number("analysisMaxErrorRatio") == 0.01
    assert Reader({"devtools:analysisMaxP95Seconds": 3}, set()).number("analysisMaxP95Seconds") == 3.0
    refused = {"nan": '"nan"', "inf": '"inf"', "1_0": '"1_0"', "": '""', "0.5s": '"0.5s"', True: "true",
               "1.5": "1.5", "-0.1": "-0.1", "1e999": "Infinity"}  # text that reads as a number shows the number
    for bad, shown in refused.items():
        reader = Reader({"devtools:analysisMaxErrorRatio": bad}, set())
        assert reader.number("analysisMaxErrorRatio") == 0.01, bad
        assert reader.problems == [f"devtools:analysisMaxErrorRatio: {shown} is not allowed: a number 0-1"], bad
    with pytest.raises(TypeError, match="devtools:analysisCount has type integer"):
        Reader({}, set()).number("analysisCount")
    # the CLI passes Pulumi.yaml's default ("0", text) as if set: that is not a value given
    assert not Reader({"devtools:analysisMaxP95Seconds": "0"}, set()).is_given("analysisMaxP95Seconds")
    assert Reader({"devtools:analysisMaxP95Seconds": "0.5"}, set()).is_given("analysisMaxP95Seconds")


def test_number_text_is_the_shortest_text_that_reads_back():
    """Pulumi.yaml and docs/config.md show a number key's default as this text; `0.0` for `0` or a rounded
    `%g` would either read oddly or change the value."""
    assert [number_text(v) for v in (0.0, 0.01, 60.0, 1e-05, 0.1 + 0.2)] == [
        "0", "0.01", "60", "1e-05", "0.30000000000000004"]
    assert BY_NAME["analysisMaxP95Seconds"].rule() == "a number 0-60"
    assert BY_NAME["analysisMaxErrorRatio"].schema_default == "0.01"
