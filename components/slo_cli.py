"""`python -m components.slo [--stack-file Pulumi.<stack>.yaml] [--output FILE]`: the SLO rule file of a stack.

Reads the stack file's `devtools:slo*` keys with the program's own checks (components.config.read_slo; an unset key
takes the key table's default, no file at all gives the defaults) and prints components.slo.render_rules of them:
what the program ships in that stack's app-tier release bundles (prometheus/slo-rules.yml). The local stand-in's
Prometheus loads the local stack's this way (scripts/local-env.sh).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from components.config import read_slo
from components.config_keys import NAMESPACE
from components.config_read import Reader
from components.slo import SloSpec, render_rules


def stack_spec(stack_file: Path | None) -> tuple[SloSpec, list[str]]:
    """The SloSpec a stack file sets, and the problems with its SLO keys (each naming the key)."""
    raw: dict[str, Any] = {}
    if stack_file is not None:
        doc = yaml.safe_load(stack_file.read_text()) or {}
        config = doc.get("config") or {} if isinstance(doc, dict) else {}
        raw = {k: v for k, v in config.items() if isinstance(k, str) and k.startswith(f"{NAMESPACE}:slo")}
    reader = Reader(raw, set())
    spec = read_slo(reader)
    return spec, reader.problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m components.slo", description=__doc__.splitlines()[0])
    p.add_argument("--stack-file", type=Path, help="the stack's Pulumi.<stack>.yaml (default: the keys' defaults)")
    p.add_argument("--output", type=Path, help="write the rule file here instead of stdout")
    a = p.parse_args(argv)
    try:
        spec, problems = stack_spec(a.stack_file)
    except (OSError, yaml.YAMLError) as exc:
        print(f"slo: cannot read {a.stack_file}: {exc}", file=sys.stderr)
        return 2
    if problems:
        print("slo: invalid stack config:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    text = render_rules(spec)
    if a.output:
        a.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0
