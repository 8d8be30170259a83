"""agent.migration: which networks a release's resolved config declares external, which migrations it runs against
the current release, and the one-shot container's name."""

from __future__ import annotations

from typing import Any

import pytest

from agent.migration import Migration, container_name, external_networks, migrations
from agent.validate.catalog import MIGRATE

A, B = "reg/x@sha256:" + "a" * 64, "reg/x@sha256:" + "b" * 64


def resolved(**services: tuple[str, str | None]) -> dict[str, Any]:
    return {"services": {name.replace("_", "-"): {"image": image, "labels": {MIGRATE: args} if args else {}}
                         for name, (image, args) in services.items()}}


def test_external_networks_by_their_docker_name() -> None:
    config = {"networks": {"data": {"name": "devtools-data", "external": True}, "default": {"name": "green_default"},
                           "other": {"external": True}, "odd": "not a mapping", "shared": {"name": "devtools-data",
                                                                                            "external": True}}}
    assert external_networks(config) == ["devtools-data", "other"]
    assert external_networks({"services": {}}) == []
    assert external_networks({"networks": {"x": {"name": "x", "external": False}}}) == []


def test_a_first_release_migrates_every_labelled_service() -> None:
    config = resolved(state=(A, "migrate"), rag=(B, None), queue=(B, "migrate --to 'v 2'"))
    assert migrations(config, None) == [Migration("queue", ("migrate", "--to", "v 2"), B, None),
                                        Migration("state", ("migrate",), A, None)]
    assert migrations(config, None)[0].command == "migrate --to 'v 2'"


def test_only_a_changed_or_new_image_migrates() -> None:
    new = resolved(state=(B, "migrate"), queue=(A, "migrate"), cache=(A, "warm"))
    current = resolved(state=(A, "migrate"), queue=(A, "migrate"))
    assert migrations(new, current) == [Migration("cache", ("warm",), A, None), Migration("state", ("migrate",), B, A)]
    assert migrations(current, current) == []
    assert migrations(new, {}) == [Migration("cache", ("warm",), A, None), Migration("queue", ("migrate",), A, None),
                                   Migration("state", ("migrate",), B, None)]


def test_a_blank_label_is_no_migration_and_an_open_quote_is_refused_by_name() -> None:
    assert migrations(resolved(state=(A, "  ")), None) == []
    with pytest.raises(ValueError, match=r"^service state: label devtools.migrate \"migrate 'x\" cannot be split"):
        migrations(resolved(state=(A, "migrate 'x")), None)


def test_the_container_name_is_the_project_service_and_job_in_docker_characters() -> None:
    assert container_name("data", "state-persistence", "20260101T000000-ab12cd") == \
        "data-migrate-state-persistence-20260101T000000-ab12cd"
    assert container_name("data", "state", "a b/c") == "data-migrate-state-a-b-c"
