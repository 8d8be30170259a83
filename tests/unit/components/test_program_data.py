"""The data tier under Pulumi's mocks: prod (and local) own it, followers read it; it is protected, firewalled to
the colors, released from its own content only, and refused while the colors run two releases."""

from __future__ import annotations

import base64
import functools
import gzip
import io
import json
import tarfile
from typing import Any

import pytest
import yaml

from components.cloud_init import fstab_line
from tests.compose_services import DATA_SERVICES, SERVICES
from tests.unit.components.program_harness import Registration, World
from tests.unit.components.program_stacks import (
    COLOR_DROPLET,
    COMMAND,
    DATA_ENV,
    DROPLET,
    FIREWALL,
    blue_outputs,
    prod_outputs,
    run_stack,
)

VOLUME = "digitalocean:index/volume:Volume"
ATTACHMENT = "digitalocean:index/volumeAttachment:VolumeAttachment"
VOLUME_SNAPSHOT = "digitalocean:index/volumeSnapshot:VolumeSnapshot"
DATA_TYPES = (VOLUME, ATTACHMENT, VOLUME_SNAPSHOT, "devtools:index:DataTier")
COLOR_TAGS = ["devtools-green", "devtools-blue"]


@functools.cache
def _prod() -> World:
    return run_stack("prod")


def _commands(world: World, suffix: str, rollout: str) -> list[Registration]:
    return [r for r in world.of_type(COMMAND) if r.name.startswith(f"{rollout}-") and r.name.endswith(suffix)]


def _one_command(world: World, suffix: str, rollout: str) -> Registration:
    found = _commands(world, suffix, rollout)
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def _bundle(upload: Registration) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(base64.b64decode(upload.inputs["stdin"])))) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _shipped(world: World, rollout: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """release.json and the compose file an upload of `rollout` carries to its host."""
    files = _bundle(_one_command(world, "-upload", rollout))
    return json.loads(files["bundle/release.json"]), yaml.safe_load(files["bundle/docker-compose.yml"])


def _data_inputs(world: World) -> dict[str, Any]:
    """Every input of the data tier's resources (its host, volume, attachment, snapshot and release)."""
    return {f"{r.type}::{r.name}": r.raw for r in world.registrations if r.name.startswith("data")}


def test_prod_declares_the_data_host_its_volume_attachment_and_snapshot():
    world = _prod()
    droplet, volume = world.one(DROPLET, "data-host"), world.one(VOLUME)
    color = world.one(DROPLET, COLOR_DROPLET)
    assert droplet.inputs["name"] == "devtools-prod-data"
    assert droplet.inputs["size"] == "s-1vcpu-2gb"
    assert droplet.inputs["vpcUuid"] == color.inputs["vpcUuid"]  # prod's VPC
    assert droplet.inputs["tags"] == ["devtools", "devtools-prod", "devtools-data"]  # never the web tag
    assert (droplet.inputs["image"], droplet.inputs["region"]) == (color.inputs["image"], color.inputs["region"])
    assert volume.inputs == {"name": "devtools-prod-data", "region": "nyc3", "size": 10,
                             "initialFilesystemType": "ext4", "tags": ["devtools", "devtools-prod", "devtools-data"]}
    attachment = world.one(ATTACHMENT)
    assert attachment.inputs == {"dropletId": int(droplet.outputs["id"]), "volumeId": volume.outputs["id"]}
    snapshot = world.one(VOLUME_SNAPSHOT)
    assert (snapshot.inputs["volumeId"], snapshot.inputs["name"]) == (volume.outputs["id"], "devtools-prod-data-g1")
    assert snapshot.retain_on_delete
    assert world.exports_plain["data"]["volumeId"] == volume.outputs["id"]
    assert world.exports_plain["data"]["volume"] == {"id": volume.outputs["id"], "name": "devtools-prod-data"}


def test_the_data_droplet_mounts_its_volume_under_dockers_volumes():
    """cloud-init of the data droplet (a secret: it holds the host key) mounts the volume by its name."""
    droplet = _prod().one(DROPLET, "data-host")
    assert droplet.secret_input("userData")
    assert fstab_line("devtools-prod-data").strip() in droplet.inputs["userData"]
    assert "RequiresMountsFor=/var/lib/docker/volumes" in droplet.inputs["userData"]
    assert "scsi-0DO_Volume" not in _prod().one(DROPLET, COLOR_DROPLET).inputs["userData"]


def test_the_volume_and_the_data_host_are_protected_and_retained_and_never_replaced_by_user_data():
    world = _prod()
    for reg in (world.one(DROPLET, "data-host"), world.one(VOLUME), world.one(ATTACHMENT)):
        assert reg.protect and reg.retain_on_delete, reg.name
    assert world.one(DROPLET, "data-host").ignore_changes == ["userData", "image", "sshKeys"]


def test_the_data_firewall_admits_only_the_colors_to_the_data_ports_and_ssh_from_the_allowlist():
    world = _prod()
    firewall = world.one(FIREWALL, "data-firewall")
    assert firewall.inputs["dropletIds"] == [int(world.one(DROPLET, "data-host").outputs["id"])]
    assert firewall.inputs["inboundRules"] == [
        {"protocol": "tcp", "portRange": "22", "sourceAddresses": ["198.51.100.0/24"]},
        {"protocol": "tcp", "portRange": "8007", "sourceTags": COLOR_TAGS},
        {"protocol": "tcp", "portRange": "8008", "sourceTags": COLOR_TAGS}]
    inbound = [r for f in world.of_type(FIREWALL) for r in f.inputs["inboundRules"]]
    data_ports = [r for r in inbound if r["portRange"] in ("8007", "8008")]
    assert data_ports and all("sourceAddresses" not in r for r in data_ports)
    color = world.one(DROPLET, COLOR_DROPLET)
    assert set(COLOR_TAGS) & set(color.inputs["tags"])  # the colors carry what the rule admits


def test_the_data_release_runs_project_data_with_its_own_file_and_address_before_the_colors():
    world = _prod()
    data = world.exports_plain["data"]
    address = world.one(DROPLET, "data-host").outputs["ipv4AddressPrivate"]
    manifest, compose = _shipped(world, "data-release")
    assert manifest["id"] == data["release"]["id"] and manifest["id"].startswith("data-")
    assert manifest["env"] == {"DATA_BIND": address, "HOST_PORT_PREFIX": "80"}
    assert set(manifest["images"]) == set(DATA_SERVICES)
    assert tuple(compose["services"]) == DATA_SERVICES and "networks" not in compose
    apply = _one_command(world, "-apply", "data-release")
    assert f"--project data apply --bundle /opt/devtools/data/incoming/{manifest['id']} " in apply.inputs["create"]
    assert data["address"] == address
    assert data["hosts"]["project"] == "data" and data["hosts"]["names"] == ["devtools-prod-data"]
    assert data["validation"]["release"] == manifest["id"] and data["validation"]["passed"] is True
    # the colors' first upload waits for the data tier's gate
    assert world.depends_on(_one_command(world, "-upload", "release"),
                            _one_command(world, "-validate-run", "data-release"))


def test_the_colors_ship_the_app_tier_with_the_data_droplets_address():
    world = _prod()
    address = world.one(DROPLET, "data-host").outputs["ipv4AddressPrivate"]
    manifest, compose = _shipped(world, "release")
    env = {"RAG_URL": f"http://{address}:8007", "STATE_URL": f"http://{address}:8008"}
    assert manifest["env"] == {"COMPOSE_PROFILES": "edge", "HOST_PORT_PREFIX": "80", **env}
    assert world.exports_plain["data"]["env"] == env
    assert set(compose["services"]) == set(SERVICES) - set(DATA_SERVICES) | {"proxy", "prometheus", "node-exporter"}
    assert "networks" not in compose


def test_blue_declares_no_data_tier_and_its_colors_reach_prods():
    world = run_stack("blue", others={"prod": prod_outputs()})
    assert not [r for r in world.registrations if r.type in DATA_TYPES or r.name.startswith("data")]
    assert [d.name for d in world.of_type(DROPLET)] == ["hosts-1"]
    manifest, compose = _shipped(world, "release")
    assert {k: manifest["env"][k] for k in DATA_ENV} == DATA_ENV
    assert not set(compose["services"]) & set(DATA_SERVICES)
    assert "data" not in world.exports_plain


def test_blue_before_prod_exported_its_data_tier_fails_naming_prod():
    outputs = {k: v for k, v in prod_outputs().items() if k != "data"}
    with pytest.raises(Exception, match=r"stack prod exports no data tier \(its `data` output\): run `pulumi up "
                                        r"--stack prod` first"):
        run_stack("blue", others={"prod": outputs})


def test_a_flip_changes_no_data_tier_input():
    others = {"blue": blue_outputs()}
    green, blue = run_stack("prod", others=others), run_stack("prod", overrides={"liveColor": "blue"}, others=others)
    assert _data_inputs(green) and _data_inputs(green) == _data_inputs(blue)


def _pinned(changed: str | None, **others: dict[str, Any]) -> World:
    """prod running its own release r1 again (a pinned id) whose images differ from the usual in `changed`."""
    return run_stack("prod", overrides={"release": "r1"}, others={"prod": prod_outputs("r1", changed), **others})


def test_the_data_release_is_stable_under_an_app_only_change_and_follows_a_data_image():
    same = _pinned(None).exports_plain["data"]["release"]["id"]
    assert _pinned("code-review").exports_plain["data"]["release"]["id"] == same
    assert _data_inputs(_pinned("code-review")) == _data_inputs(_pinned(None))  # nothing of the data tier re-runs
    assert _pinned("state-persistence").exports_plain["data"]["release"]["id"] != same


def _own(data_release: str, release: str) -> dict[str, Any]:
    """prod's own last exports: its release history (r1), its last release and its last data release."""
    return {**prod_outputs("r1"), "release": {"id": release}, "data": {"release": {"id": data_release}}}


def test_a_data_release_while_the_colors_run_two_releases_is_refused_before_anything_changes():
    with pytest.raises(Exception) as err:
        _pinned(None, prod=_own("data-000000000000", "r2"), blue={"release": {"id": "r0"}})
    assert ("on stack prod: it changes the data tier (now data-000000000000) while the colors run two releases, r2 on "
            "stack prod and r0 on stack blue, and one data tier serves both. Bring stack blue to release r2 first "
            "(`pulumi up --stack blue`), or flip so both colors run one release; then run this update again"
            ) in str(err.value)
    refused = err.value.registrations  # type: ignore[attr-defined]
    assert not [r for r in refused if r.type == COMMAND and r.name.endswith(("-upload", "-apply"))]


def test_a_data_release_is_allowed_when_both_colors_run_one_release_and_unchanged_reads_no_standby():
    allowed = _pinned(None, prod=_own("data-000000000000", "r2"), blue={"release": {"id": "r2"}})
    assert allowed.exports_plain["data"]["release"]["id"] != "data-000000000000"
    refs = sorted(r.name for r in allowed.of_type("pulumi:pulumi:StackReference"))
    assert refs == ["organization/devtools/blue", "organization/devtools/prod"]
    current = allowed.exports_plain["data"]["release"]["id"]
    unchanged = _pinned(None, prod=_own(current, "r2"), blue={"release": {"id": "r0"}})
    assert unchanged.exports_plain["data"]["release"]["id"] == current
    assert sorted(r.name for r in unchanged.of_type("pulumi:pulumi:StackReference")) == ["organization/devtools/prod"]


def test_a_smaller_data_volume_is_refused_naming_the_key():
    previous = {"data": {"shape": {"region": "nyc3", "dataDropletSize": "s-1vcpu-2gb", "dataVolumeSize": 20}}}
    with pytest.raises(Exception) as err:
        run_stack("prod", others={"prod": previous})
    assert ("refusing devtools:dataVolumeSize 20 -> 10 on stack prod: a block volume only grows (DigitalOcean cannot "
            "shrink one) and it holds every named volume of the data tier. Put back 20 or more") in str(err.value)
    refused = err.value.registrations  # type: ignore[attr-defined]
    assert not [r for r in refused if r.type in (VOLUME, DROPLET) and r.name.startswith("data")]
    grown = run_stack("prod", overrides={"dataVolumeSize": "40"}, others={"prod": previous})
    assert grown.one(VOLUME).inputs["size"] == 40


def test_local_runs_the_data_tier_on_the_first_existing_host_joined_by_name(tmp_path):
    world = run_stack("local", key_file=tmp_path / "id")
    assert not [r for r in world.registrations if r.type.startswith("digitalocean:")]
    data = world.exports_plain["data"]
    assert (data["address"], data["volumeId"]) == ("", "")
    assert "volume" not in data  # no block volume to snapshot
    assert data["hosts"]["names"] == ["127.0.0.1:2222"] and data["hosts"]["project"] == "data"
    manifest, compose = _shipped(world, "data-release")
    assert manifest["env"] == {"DATA_BIND": "127.0.0.1", "HOST_PORT_PREFIX": "83"}
    assert compose["networks"] == {"data": {"name": "devtools-data", "external": True}}
    apply = _one_command(world, "-apply", "data-release")
    assert (apply.inputs["connection"]["host"], apply.inputs["connection"]["port"]) == ("127.0.0.1", 2222)
    # the trace phase validates the colors' agents; the data tier runs none
    assert "--langfuse-host=http://127.0.0.1:9392" in _one_command(world, "-apply", "release").inputs["create"]
    assert "--langfuse-host" not in apply.inputs["create"]
    colors, app = _shipped(world, "release")
    env = {"RAG_URL": "http://rag-context:8007", "STATE_URL": "http://state-persistence:8008"}
    assert {k: colors["env"][k] for k in env} == env == data["env"]
    assert app["networks"] == compose["networks"]


def test_local_blue_reaches_the_local_data_tier_over_the_shared_network(tmp_path):
    env = {"RAG_URL": "http://rag-context:8007", "STATE_URL": "http://state-persistence:8008"}
    local = {**prod_outputs("r9"), "data": {"address": "", "env": env}}
    world = run_stack("local-blue", others={"local": local}, key_file=tmp_path / "id")
    assert not [r for r in world.registrations if r.name.startswith("data")]
    manifest, compose = _shipped(world, "release")
    assert {k: manifest["env"][k] for k in env} == env
    assert compose["networks"] == {"data": {"name": "devtools-data", "external": True}}
