"""Pulumi.yaml's `config:` block and docs/config.md are the key table's output (components/config_doc.py): the
committed files are exactly what the generator writes, its pieces are pinned as exact strings, and its CLI
reports and fixes a hand edit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from components import config_doc
from components.config_keys import BY_NAME, KEYS
from tests.unit.components.stack_configs import ROOT

FIX = "run `python -m components.config_doc --write`"


def test_committed_files_are_the_generators_output_byte_for_byte():
    """A hand edit of either file (a default changed in Pulumi.yaml only, a row fixed in docs/config.md only) is
    a second source of truth that silently disagrees with what the program checks; regenerate instead."""
    for rel, text in config_doc.rendered(ROOT).items():
        assert (ROOT / rel).read_bytes() == text.encode(), f"{rel} differs: {FIX}"


def test_the_reference_has_one_row_per_key_with_its_type_default_and_rule():
    """docs/config.md is where an operator looks a key up (the README links to it): every key of the table has
    its row, in table order, with its type, default and allowed values."""
    doc = (ROOT / "docs" / "config.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [k.name for k in KEYS]
    assert rows[[k.name for k in KEYS].index("hostCount")] == (
        "| `hostCount` | integer | `1` |  | an integer 1-10 | droplets of this color (rolled one after another) |")
    assert doc.splitlines()[5:8] == ["```bash", ".venv/bin/python -m components.config_doc --write", "```"]


def test_generated_schema_reads_back_as_the_table():
    """The block is YAML written by hand-rolled code: every description must read back as the key's meaning and
    every default as the key's default, quotes and non-ASCII included."""
    config = yaml.safe_load(config_doc.pulumi_yaml((ROOT / "Pulumi.yaml").read_text()))["config"]
    assert list(config) == [k.name for k in KEYS if k.in_schema]
    for name, decl in config.items():
        assert (decl["description"], decl["default"]) == (BY_NAME[name].meaning, BY_NAME[name].schema_default), name


def test_schema_entries_are_exact():
    assert config_doc.schema_entry(BY_NAME["hostCount"]) == (
        "  hostCount:\n    type: integer\n"
        '    description: "droplets of this color (rolled one after another)"\n    default: 1\n')
    assert config_doc.schema_entry(BY_NAME["existingHosts"]) == (
        "  existingHosts:\n    type: array\n    items:\n      type: string\n"
        '    description: "`address[:port]` of each existing host (provider existing)"\n    default: []\n')
    assert config_doc.schema_entry(BY_NAME["analysisMaxErrorRatio"]) == (
        "  analysisMaxErrorRatio:\n    type: string\n"
        '    description: "largest share of 5xx answers of any one service of the color that passes a measurement (the '
        'error-ratio objective\'s query; no requests at all: inconclusive)"\n    default: "0.01"\n')
    assert config_doc.schema_entry(BY_NAME["prometheusSelector"]) == (
        '  prometheusSelector:\n    type: string\n'
        '    description: "label selector for the Prometheus phase, e.g. color=\\"green\\""\n    default: ""\n')


def test_doc_rows_are_exact():
    """Pipes in patterns are escaped (they would split the cell), and `<word>` in prose is escaped (it would be
    swallowed as an HTML tag)."""
    assert config_doc.doc_row(BY_NAME["buildPlatform"]) == (
        '| `buildPlatform` | string | `"linux/amd64"` |  | linux/amd64, linux/arm64 or linux/arm/v7; pattern '
        "`linux/(amd64\\|arm64\\|arm/v7)` | image platform |\n")
    assert config_doc.doc_row(BY_NAME["hostPortPrefix"]) == (
        "| `hostPortPrefix` | integer | `80` |  | an integer 10-99 | published ports are 127.0.0.1:\\<prefix>0N on "
        "the host (10-99) |\n")
    assert config_doc.doc_row(BY_NAME["appSecrets"]) == (
        "| `appSecrets` | object | `{}` | yes | an object of string values; names: UPPER_CASE names; pattern "
        "`[A-Z_][A-Z0-9_]*` | application secrets NAME → value, written to a 0600 file on every host |\n")
    assert config_doc.doc_row(BY_NAME["sshAllowlist"]).split(" | ")[4] == (
        "a list; each entry: an IPv4 or IPv6 CIDR such as 203.0.113.7/32; pattern `[0-9a-fA-F:./]+`")
    assert config_doc.doc_row(BY_NAME["analysisMaxP95Seconds"]).split(" | ")[1:5] == [
        "number", "`0`", "", "a number 0-60"]
    assert config_doc.doc_row(BY_NAME["appRoot"]).split(" | ")[4] == "any string"
    assert config_doc.doc_row(BY_NAME["monitoring"]).split(" | ")[4] == "true or false"


def test_the_keys_left_out_of_the_schema_are_named_with_why():
    """Pulumi.yaml's comment and docs/config.md say which keys the schema leaves out; the list comes from the
    table, so a new secret key appears in both without anyone editing prose."""
    block = config_doc.schema_block()
    assert block.splitlines()[0] == config_doc.MARKER
    names = ("devtools:promotion (object), devtools:appSecrets (object, secret), devtools:sshPrivateKey (secret), "
             "devtools:sshHostPrivateKey (secret), devtools:signingKey (secret) and devtools:signingPassword (secret)")
    assert names in " ".join(line.removeprefix("# ") for line in block.splitlines() if line.startswith("#"))
    assert f"Pulumi.yaml declares every key except {names}." in " ".join(config_doc.config_doc().split())


def test_retired_keys_are_listed_with_why():
    """An operator whose stack file still sets a retired key finds it, and what replaced it, in the reference."""
    assert config_doc.config_doc().endswith(
        "\n## Retired keys\n\nThe program refuses a stack that still sets one of these, with the reason:\n\n"
        "* `fromSnapshot`: standbys boot the base image (devtools:dropletImage) with cloud-init, like the primary: a "
        "snapshot of the primary carried its running containers, its secrets file and its data into the standby, "
        "and was taken while cloud-init still ran; remove the key.\n")


def test_the_generator_is_deterministic():
    """Two runs give the same bytes (no clock, no set order): otherwise --check would fail on a clean tree."""
    assert config_doc.rendered(ROOT) == config_doc.rendered(ROOT)
    assert config_doc.pulumi_yaml(config_doc.pulumi_yaml("name: x\n")) == config_doc.pulumi_yaml("name: x\n")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copy(ROOT / "docs" / "config.md", tmp_path / "docs" / "config.md")
    return tmp_path


def test_check_names_each_hand_edited_file_and_the_command_that_fixes_it(checkout, capsys):
    """--check changes nothing and exits 1 with one line per differing file, so CI output says what to run."""
    assert config_doc.main(["--check"], root=checkout) == 0
    assert capsys.readouterr().err == ""
    yaml_file, doc = checkout / "Pulumi.yaml", checkout / "docs" / "config.md"
    yaml_file.write_text(yaml_file.read_text().replace("default: 5\n", "default: 6\n"))
    doc.write_text(doc.read_text() + "| `extra` | string |\n")
    edited = (yaml_file.read_bytes(), doc.read_bytes())
    assert config_doc.main(["--check"], root=checkout) == 1
    assert capsys.readouterr().err == (f"Pulumi.yaml differs from components/config_keys.py: {FIX}\n"
                                       f"docs/config.md differs from components/config_keys.py: {FIX}\n")
    assert (yaml_file.read_bytes(), doc.read_bytes()) == edited
    assert config_doc.main(["--write"], root=checkout) == 0
    assert capsys.readouterr().out == "wrote Pulumi.yaml\nwrote docs/config.md\n"
    assert yaml_file.read_bytes() == (ROOT / "Pulumi.yaml").read_bytes()
    assert doc.read_bytes() == (ROOT / "docs" / "config.md").read_bytes()
    assert config_doc.main(["--check"], root=checkout) == 0


def test_write_keeps_the_hand_written_top_and_creates_a_missing_doc(checkout, capsys):
    """Above the marker Pulumi.yaml is the project's own (name, description, runtime): --write must not undo an
    edit there, and it writes docs/config.md when the file is missing."""
    yaml_file = checkout / "Pulumi.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("description: Digest-pinned", "description: Pinned"))
    (checkout / "docs" / "config.md").unlink()
    assert config_doc.main(["--check"], root=checkout) == 1
    assert capsys.readouterr().err == f"docs/config.md differs from components/config_keys.py: {FIX}\n"
    assert config_doc.main(["--write"], root=checkout) == 0
    assert yaml.safe_load(yaml_file.read_text())["description"].startswith("Pinned")
    assert (checkout / "docs" / "config.md").read_bytes() == (ROOT / "docs" / "config.md").read_bytes()


def test_help_and_a_missing_mode(capsys):
    """`--help` documents both modes; no mode at all is a usage error, never a silent rewrite."""
    with pytest.raises(SystemExit) as done:
        config_doc.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m components.config_doc [-h] (--write | --check)")
    assert "--write     rewrite both files from the key table" in out
    with pytest.raises(SystemExit) as failed:
        config_doc.main([])
    assert failed.value.code == 2
