"""The whole __main__.py per stack under Pulumi's mocks: the resource graph each committed stack file declares."""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import tarfile
from typing import Any

import pytest

from tests.compose_services import DATA_SERVICES, SERVICES
from tests.unit.components.program_harness import Registration, World, secret_leaks
from tests.unit.components.program_stacks import (
    COLOR_DROPLET,
    COMMAND,
    CREDS,
    DROPLET,
    FIREWALL,
    IMAGE,
    LB,
    LOCAL_COMMAND,
    REGISTRY,
    SNAPSHOT,
    blue_outputs,
    prod_outputs,
    run_stack,
)
from tests.unit.components.stack_configs import SECRET_VALUES


@pytest.fixture(scope="module")
def prod() -> World:
    return run_stack("prod")


def _commands(world: World, suffix: str, rollout: str = "release") -> list[Registration]:
    """The remote commands of one rollout ending in `suffix`: the colors' (`release`) or the data tier's
    (`data-release`)."""
    return [r for r in world.of_type(COMMAND) if r.name.startswith(f"{rollout}-") and r.name.endswith(suffix)]


def test_prod_registry_and_credentials(prod):
    """prod owns DOCR (protected: deleting it deletes every image a rollback needs) with read-only pull (each
    rollout's, the colors' and the data tier's, expiring, handed to hosts over SSH) and push credentials; no
    credential is a stack output."""
    docr = prod.one(REGISTRY)
    assert docr.protect
    assert docr.inputs["subscriptionTierSlug"] == "professional"  # 9 repositories
    creds = prod.of_type(CREDS)
    assert sorted(c.inputs["write"] for c in creds) == [False, False, True]
    assert [c.inputs.get("expirySeconds") for c in creds if not c.inputs["write"]] == [604800, 604800]
    assert "registryPullAuth" not in prod.exports
    assert prod.exports_plain["registry"] == {"address": "registry.digitalocean.com/devtools", "name": "devtools"}


def test_prod_builds_and_pushes_one_image_per_service(prod):
    images = prod.of_type(IMAGE)
    assert sorted(i.name.removeprefix("images-") for i in images) == sorted(SERVICES)
    for image in images:
        assert image.inputs["push"] is True
        assert image.inputs["buildOnPreview"] is False  # a PR preview never builds or pushes
        assert image.retain_on_delete  # a rollback needs the old tags to stay pushed
        service = image.name.removeprefix("images-")
        assert image.inputs["tags"] == [f"registry.digitalocean.com/devtools/{service}:1a2b3c4"]
    release = prod.exports_plain["release"]
    assert release["id"] == "1a2b3c4"
    assert set(release["images"]) == set(SERVICES)
    assert all(re.fullmatch(r"registry\.digitalocean\.com/devtools/[a-z-]+@sha256:[0-9a-f]{64}", ref)
               for ref in release["images"].values())


def test_prod_hosts_cloud_init_and_firewall(prod):
    """Droplets get cloud-init (docker, compose, the agent venv) and SSH only from the allowlist; HTTP only from
    the load balancer."""
    droplet = prod.one(DROPLET, COLOR_DROPLET)
    assert droplet.protect and droplet.ignore_changes == ["userData", "image", "sshKeys"]
    assert droplet.inputs["userData"].startswith("#cloud-config")
    assert droplet.secret_input("userData")  # it carries the host key
    assert "devtools-web" in droplet.inputs["tags"] and "devtools-green" in droplet.inputs["tags"]
    ssh = prod.one(FIREWALL, "ssh")
    assert [(r["portRange"], r["sourceAddresses"]) for r in ssh.inputs["inboundRules"]] == [("22",
                                                                                            ["198.51.100.0/24"])]
    web = prod.one(FIREWALL, "web")
    assert web.inputs["tags"] == ["devtools-web"]
    for rule in web.inputs["inboundRules"]:
        assert "sourceAddresses" not in rule and rule["sourceLoadBalancerUids"]
    inbound = [r for f in prod.of_type(FIREWALL) for r in f.inputs["inboundRules"]]
    assert not [r for r in inbound if "0.0.0.0/0" in r.get("sourceAddresses", [])]


def test_prod_snapshot_of_the_primary(prod):
    snap = prod.one(SNAPSHOT)
    assert snap.inputs["dropletId"] == prod.one(DROPLET, COLOR_DROPLET).outputs["id"]
    assert snap.inputs["name"] == "devtools-prod-primary-g1"
    assert snap.retain_on_delete
    assert prod.exports_plain["snapshotId"].startswith("snap-")


def _shipped(upload: Registration) -> dict[str, Any]:
    """release.json as the upload's stdin carries it to the host."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(base64.b64decode(upload.inputs["stdin"])))) as tar:
        member = tar.extractfile("bundle/release.json")
        assert member is not None
        shipped: dict[str, Any] = json.loads(member.read())
    return shipped


def test_prod_rollout_runs_the_host_agent_with_the_digests(prod):
    apply = _commands(prod, "-apply")[0]
    assert ("-m agent.hostagent --root /opt/devtools --project green apply "
            "--bundle /opt/devtools/green/incoming/1a2b3c4") in apply.inputs["create"]
    upload = _commands(prod, "-upload")[0]
    release = prod.exports_plain["release"]
    assert release["content"] in apply.inputs["create"]
    shipped = _shipped(upload)
    # the host gets exactly the pushed digests of the services its (app tier) compose file runs
    assert shipped["images"] == {s: ref for s, ref in release["images"].items() if s not in DATA_SERVICES}
    assert set(shipped["images"]) == set(SERVICES) - set(DATA_SERVICES)


def test_validation_gates_traffic(prod):
    """Traffic may only move after the validation of its color passed: the load balancer waits for the gate
    (a real dependency in the graph, not an assumption about ordering)."""
    lb = prod.one(LB)
    gate = _commands(prod, "-validate-run")[0]
    apply = _commands(prod, "-apply")[0]
    release_id = prod.exports_plain["release"]["id"]
    assert f" -m agent.hostagent --root /opt/devtools --project green gate --release {release_id} " in (
        gate.inputs["create"])
    assert prod.depends_on(lb, gate)
    assert prod.depends_on(gate, apply)
    assert lb.inputs["dropletIds"] == prod.exports_plain["hosts"]["dropletIds"]
    assert lb.inputs["healthcheck"]["path"] == "/health"
    assert prod.exports_plain["liveColor"] == "green"


def test_blue_follows_prod_and_never_builds():
    """blue runs prod's release on droplets of the base image, in prod's VPC, and creates no registry or image."""
    world = run_stack("blue", others={"prod": prod_outputs()})
    assert not world.of_type(IMAGE) and not world.of_type(REGISTRY) and not world.of_type(LB)
    droplet = world.one(DROPLET)
    assert droplet.inputs["image"] == "ubuntu-24-04-x64"
    assert droplet.inputs["vpcUuid"] == "vpc-prod"
    assert not droplet.protect and "image" not in droplet.ignore_changes  # a new base image replaces standbys
    apply = _commands(world, "-apply")[0]
    assert "--project blue apply --bundle /opt/devtools/blue/incoming/r1" in apply.inputs["create"]
    assert world.exports_plain["release"]["images"] == prod_outputs()["release"]["images"]


def test_a_followed_or_pinned_release_keeps_its_commit():
    """A standby runs prod's release: its release.json and its `release` output name the commit that release was
    built from (they said `null`), and a pinned id brings its own commit, not the checkout's."""
    prod = prod_outputs()
    prod["release"] = {**prod["release"], "commit": "c0ffee1"}
    prod["releases"] = {"r0": {**prod["release"], "id": "r0", "commit": "0ld0ld0"}, "r1": prod["release"]}
    world = run_stack("blue", others={"prod": prod})
    assert _shipped(_commands(world, "-upload")[0])["source"] == {"commit": "c0ffee1"}
    assert world.exports_plain["release"]["commit"] == "c0ffee1"
    pinned = run_stack("blue", overrides={"release": "r0"}, others={"prod": prod})
    assert _shipped(_commands(pinned, "-upload")[0])["source"] == {"commit": "0ld0ld0"}
    assert pinned.exports_plain["release"]["commit"] == "0ld0ld0"


def test_blue_without_prod_outputs_fails_clearly():
    with pytest.raises(Exception, match=r"stack prod exports no release yet: run `pulumi up --stack prod` first"):
        run_stack("blue", others={})


def test_local_uses_the_stand_in_and_no_digitalocean(tmp_path):
    world = run_stack("local", key_file=tmp_path / "id")
    assert not [r for r in world.registrations if r.type.startswith("digitalocean:")]
    images = world.of_type(IMAGE)
    assert len(images) == len(SERVICES)
    assert images[0].inputs["tags"][0].startswith("127.0.0.1:5000/devtools/")
    apply = _commands(world, "-apply")[0]
    connection = apply.inputs["connection"]
    assert (connection["host"], connection["port"]) == ("127.0.0.1", 2222)
    flip = world.one(LOCAL_COMMAND, "traffic")
    assert flip.inputs["create"].endswith("scripts/local-env.sh flip green")
    assert world.depends_on(flip, _commands(world, "-validate-run")[0])


def test_local_blue_runs_the_local_release_on_the_blue_project(tmp_path):
    """The local standby: no build, no DigitalOcean, no traffic resource; it applies what `local` exports."""
    local = {**prod_outputs("r9"), "registryPullAuth": None}
    world = run_stack("local-blue", others={"local": local}, key_file=tmp_path / "id")
    assert world.of_type(IMAGE) == []
    assert not [r for r in world.registrations if r.type.startswith("digitalocean:")]
    assert world.of_type(LOCAL_COMMAND) == []
    apply = _commands(world, "-apply")[0]
    assert "--project blue" in apply.inputs["create"] and "apply --bundle /opt/devtools/blue/incoming/r9" in \
        apply.inputs["create"]
    assert (apply.inputs["connection"]["host"], apply.inputs["connection"]["port"]) == ("127.0.0.1", 2222)
    assert world.exports_plain["release"]["images"] == local["release"]["images"]


def test_local_flips_its_proxy_to_local_blue(tmp_path):
    blue = {"hosts": {"names": ["127.0.0.1:2222"], "dropletIds": []}, "release": {"id": "r9", "content": "c"},
            "validation": {"release": "r9", "content": "c", "passed": True}}
    world = run_stack("local", overrides={"liveColor": "blue"}, others={"local-blue": blue},
                      key_file=tmp_path / "id")
    assert world.one(LOCAL_COMMAND, "traffic").inputs["create"].endswith("scripts/local-env.sh flip blue")


def test_local_rollback_pin_reads_only_its_own_history(tmp_path):
    """The local stack is its own prod: pinning an earlier release must not reference a `prod` stack that does
    not exist on this backend (the engine fails such a read)."""
    own = prod_outputs("r1")
    world = run_stack("local", overrides={"release": "r1"}, others={"local": own}, key_file=tmp_path / "id")
    refs = sorted(r.name for r in world.of_type("pulumi:pulumi:StackReference"))
    assert refs == ["organization/devtools/local"]
    assert world.exports_plain["release"]["id"] == "r1"
    assert world.of_type(IMAGE) == []


def _non_traffic_inputs(world: World) -> dict[str, object]:
    return {f"{r.type}::{r.name}": r.raw for r in world.registrations
            if not r.name.startswith("traffic") and r.type != "pulumi:pulumi:StackReference"}


def test_flip_changes_only_the_traffic_resource():
    """A flip must replace nothing and re-run nothing: every host, image and rollout input stays identical and only
    the load balancer's targets move."""
    others = {"blue": blue_outputs()}
    green = run_stack("prod", others=others)
    blue = run_stack("prod", overrides={"liveColor": "blue"}, others=others)
    assert _non_traffic_inputs(green) == _non_traffic_inputs(blue)
    assert green.one(LB).inputs["dropletIds"] != blue.one(LB).inputs["dropletIds"]
    assert blue.one(LB).inputs["dropletIds"] == [555001]
    assert {k: v for k, v in green.one(LB).raw.items() if k != "dropletIds"} == \
        {k: v for k, v in blue.one(LB).raw.items() if k != "dropletIds"}


@pytest.mark.parametrize("outputs", [blue_outputs(validated=False), blue_outputs(content="c-older")],
                         ids=["failed validation", "validated another release"])
def test_flip_to_an_unvalidated_color_is_refused(outputs):
    with pytest.raises(Exception, match="refusing to send traffic to blue") as err:
        run_stack("prod", overrides={"liveColor": "blue"}, others={"blue": outputs})
    assert not [r for r in err.value.registrations if r.type == LB]  # type: ignore[attr-defined]


def _rollout_inputs(world: World) -> dict[str, object]:
    return {r.name: r.raw for r in world.of_type(COMMAND)}


def test_same_release_twice_is_a_no_op_and_one_digest_changes_the_rollout():
    """Same digests → identical rollout inputs (nothing re-runs); one changed digest → the apply's command
    changes (the host agent then recreates only that service: tests/e2e/test_release.py), the host does not."""
    first = run_stack("blue", others={"prod": prod_outputs()})
    again = run_stack("blue", others={"prod": prod_outputs()})
    assert _rollout_inputs(first) == _rollout_inputs(again)
    changed = run_stack("blue", others={"prod": prod_outputs(changed="code-review")})
    apply_before, apply_after = (_commands(w, "-apply")[0].inputs for w in (first, changed))
    assert apply_before["create"] != apply_after["create"]
    assert apply_before["triggers"] == apply_after["triggers"]  # same host: an update, not a replacement
    assert first.one(DROPLET).raw == changed.one(DROPLET).raw


@pytest.mark.parametrize("stack", ["prod", "blue", "local", "local-blue"])
def test_no_secret_in_plain_text_anywhere(stack, tmp_path):
    """Registry credentials, the DO token, Langfuse keys and the SSH key end to end as secrets: no resource input
    and no stack output holds one in plain text."""
    others = {"prod": prod_outputs()} if stack == "blue" else {"local": prod_outputs()} if stack == "local-blue" \
        else {}
    world = run_stack(stack, others=others, key_file=tmp_path / "id")
    creds = [o.get("dockerCredentials", "") for r in world.of_type(CREDS) for o in [r.outputs]]
    assert secret_leaks(world, [*SECRET_VALUES, *creds]) == []
    rollouts = ("release", "data-release") if stack in ("prod", "local") else ("release",)
    for rollout in rollouts:
        secrets = _commands(world, "-secrets", rollout)
        assert len(secrets) == 1
        assert all(cmd.secret_input("stdin") for cmd in secrets)


def test_reserved_ip_mode_admits_http_from_anywhere_to_one_droplet():
    """Without a load balancer the reserved IP's droplet must take HTTP(S) from anywhere; SSH stays allowlisted."""
    world = run_stack("prod", overrides={"traffic": "reservedIp"})
    assert not world.of_type(LB)
    assignment = world.one("digitalocean:index/reservedIpAssignment:ReservedIpAssignment")
    assert assignment.inputs["dropletId"] == world.exports_plain["hosts"]["dropletIds"][0]
    assert world.depends_on(assignment, _commands(world, "-validate-run")[0])
    web = world.one(FIREWALL, "web")
    assert sorted(r["portRange"] for r in web.inputs["inboundRules"]) == ["443", "80"]
    assert all(r["sourceAddresses"] == ["0.0.0.0/0", "::/0"] for r in web.inputs["inboundRules"])
    assert world.one(FIREWALL, "ssh").inputs["inboundRules"][0]["sourceAddresses"] == ["198.51.100.0/24"]


def test_several_hosts_roll_one_after_another():
    """With N hosts a bad release must stop at the first: host 2 starts only after host 1's gate passed, and the
    load balancer waits for the last gate."""
    world = run_stack("prod", overrides={"hostCount": "3"})
    droplets = [d for d in world.of_type(DROPLET) if d.name.startswith(COLOR_DROPLET)]
    assert len(droplets) == 3
    gates = sorted(_commands(world, "-validate-run"), key=lambda r: r.name)
    uploads = sorted(_commands(world, "-upload"), key=lambda r: r.name)
    assert len(gates) == len(uploads) == 3
    assert world.depends_on(uploads[1], gates[0]) and world.depends_on(uploads[2], gates[1])
    assert not world.depends_on(uploads[0], gates[1])
    assert world.depends_on(world.one(LB), gates[2])
    assert sorted(world.one(LB).inputs["dropletIds"]) == sorted(world.exports_plain["hosts"]["dropletIds"])
    confirms = sorted(_commands(world, "-confirm"), key=lambda r: r.name)
    assert len(confirms) == 3  # the pool's verdict: each host's provisional release is final only after every gate
    assert all(world.depends_on(world.one(LB), c) for c in confirms)
    assert all(world.depends_on(c, gates[2]) for c in confirms)
