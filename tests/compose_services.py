"""The services compose/docker-compose.yml declares, in file order, as the Pulumi program reads them
(components.catalog). Tests that need every service take them from here; only
tests/unit/components/test_catalog.py spells the nine out, as the test of the compose file itself."""

from __future__ import annotations

from pathlib import Path

from components.catalog import load_service_catalog
from components.tiers import read_tiers

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_DIR = ROOT / "compose"
SERVICES: tuple[str, ...] = load_service_catalog(COMPOSE_DIR, ROOT / "examples" / "app").services
DATA_SERVICES: tuple[str, ...] = read_tiers((COMPOSE_DIR / "docker-compose.yml").read_text()).data
"""The services of the data tier (`devtools.tier: data`); the colors run the others."""
