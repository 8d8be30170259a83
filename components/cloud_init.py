"""The droplet's first-boot configuration: a pure `#cloud-config` renderer (no Pulumi, exact-string tested).

    text = render_cloud_init(host_root="/opt/devtools", host_requirements=host_requirements_text(ROOT),
                             host_doctor=host_doctor_text(ROOT), host_key=None)

On Ubuntu 24.04 it installs the docker engine, the compose v2 plugin and python3-venv, starts docker, creates
the host agent's directory and its venv (`<host_root>/venv`, from which `ops.ship.agent_command` runs the agent).
It holds no registry credential: user data is readable from the metadata service, copied into snapshots and never
updated on a running droplet, so the rollout hands expiring pull credentials over SSH (`hostagent registry-auth`).
Containers cannot reach the metadata service (169.254.169.254): a DOCKER-USER rule drops their packets to it, put
back by a docker.service drop-in at every start of docker (after a reboot docker makes the chain anew). Given the
stack's SSH host key (an unencrypted OpenSSH private key), it deletes the image's host keys and installs that one
(`ssh_keys`; cloud-init generates no other type then), so the key the rollout and ops.cli pin is the key sshd
presents.

The host agent verifies every image's signature with cosign before a release changes anything (agent.signing, at
agent.signing.COSIGN): cloud-init installs the pinned release binary for the droplet's architecture, its sha256
checked; a download that does not match installs nothing and ends runcmd with an error (`|| exit 1`), so the
droplet shows as a cloud-init failure instead of a host that cannot verify.

Its last step is the host agent's doctor (python 3.11+, the venv's pins, docker answering, compose v2): the
bootstrap ends with the doctor's verdict in /var/log/cloud-init-output.log, and as runcmd's last command its exit
status is the runcmd script's, so a host that lacks something shows as a cloud-init error. The agent code only
arrives with the first upload, so cloud-init writes agent/doctor.py (standard library only, it runs on its own) as
<host_root>/doctor.py and runs it with the venv's python against the requirements it just installed: the same code
`hostagent doctor` runs later, not a second implementation.

The data droplet (`data_volume`: the name of its block volume) keeps docker's named volumes on that volume: an
/etc/fstab entry mounts it at /var/lib/docker/volumes (by the stable name DigitalOcean gives its device, waiting for
the attachment, which comes after the droplet exists) and a docker.service drop-in requires that mount, so docker
never starts with its volumes on the droplet's own disk, at first boot (the package's own start of docker waits for
it) or after a reboot. Every named volume of the data project survives the droplet's replacement with the volume.

Order on the droplet: write_files (init stage) → packages (final stage) → runcmd (final stage, after packages).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agent.signing import COSIGN
from components.ssh_keys import cloud_init_type, public_half

PACKAGES = ("docker.io", "docker-compose-v2", "python3", "python3-venv", "ca-certificates", "curl")
METADATA = "169.254.169.254/32"
BLOCK_METADATA = "/usr/local/sbin/devtools-block-metadata"
BLOCK_METADATA_SCRIPT = f"""#!/bin/sh
# Containers must not reach the droplet metadata service: it serves this droplet's user data (its host key).
iptables -C DOCKER-USER -d {METADATA} -j DROP 2>/dev/null ||
  iptables -I DOCKER-USER -d {METADATA} -j DROP
"""
DOCKER_DROP_IN = "/etc/systemd/system/docker.service.d/devtools-block-metadata.conf"
DOCKER_DROP_IN_TEXT = f"""# After a reboot docker makes DOCKER-USER anew: every start of docker puts the rule back.
[Service]
ExecStartPost={BLOCK_METADATA}
"""

# cosign: the one release every host verifies with (the local stand-in builds the same version from the Go module
# proxy: scripts/pulumi-toolchain.sh), by `uname -m`: the release's binary name and its sha256.
COSIGN_VERSION = "v3.1.3"
COSIGN_RELEASE_URL = f"https://github.com/sigstore/cosign/releases/download/{COSIGN_VERSION}"
COSIGN_BINARIES = {
    "x86_64": ("cosign-linux-amd64", "4629c757b7618056f8ddd7e2625ae9fdd94c0372a65049520bc7d9df9efc7f71"),
    "aarch64": ("cosign-linux-arm64", "c5d324e091826b0d7a78eb16fef316450b4eb9aaec045611c08ba06f5e73220a"),
}
INSTALL_COSIGN = "/usr/local/sbin/devtools-install-cosign"


def install_cosign_script() -> str:
    """The script that installs the pinned cosign at agent.signing.COSIGN (nothing when it is already there)."""
    cases = "".join(f"  {machine}) name={name} sha256={digest} ;;\n"
                    for machine, (name, digest) in COSIGN_BINARIES.items())
    return f"""#!/bin/sh
# cosign {COSIGN_VERSION}, which verifies every image's signature before a release changes anything: the release
# binary for this machine, pinned by its sha256. A mismatch installs nothing and exits 1.
set -eu
case "$(uname -m)" in
{cases}  *) echo "cosign {COSIGN_VERSION}: no pinned binary for $(uname -m)" >&2; exit 1 ;;
esac
if [ -x {COSIGN} ] && [ "$(sha256sum {COSIGN} | cut -d' ' -f1)" = "$sha256" ]; then
  exit 0
fi
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
curl -fsSL --retry 5 --retry-all-errors -o "$tmp" "{COSIGN_RELEASE_URL}/$name"
got=$(sha256sum "$tmp" | cut -d' ' -f1)
if [ "$got" != "$sha256" ]; then
  echo "$name {COSIGN_VERSION}: sha256 $got, expected $sha256: not installed" >&2
  exit 1
fi
install -m 0755 -o root -g root "$tmp" {COSIGN}
"""


DOCKER_VOLUMES = "/var/lib/docker/volumes"
DATA_DROP_IN = "/etc/systemd/system/docker.service.d/devtools-data-volume.conf"
DATA_DROP_IN_TEXT = f"""# The data tier's named volumes live on the block volume: docker starts only once it is mounted.
[Unit]
RequiresMountsFor={DOCKER_VOLUMES}
"""
DEVICE_TIMEOUT = "10min"
"""How long systemd waits for the volume's device: the attachment follows the droplet's creation."""


def volume_device(volume_name: str) -> str:
    """The device DigitalOcean gives an attached volume, by its name (stable across droplets and reboots)."""
    return f"/dev/disk/by-id/scsi-0DO_Volume_{volume_name}"


def fstab_line(volume_name: str) -> str:
    """The data volume's /etc/fstab entry: ext4 (DigitalOcean formats it), `nofail` (boot goes on without it; docker
    does not), TRIM, and a device wait longer than the attachment takes."""
    options = f"defaults,nofail,discard,x-systemd.device-timeout={DEVICE_TIMEOUT}"
    return f"{volume_device(volume_name)} {DOCKER_VOLUMES} ext4 {options} 0 2\n"


class _Argv(list[str]):
    """A runcmd entry: dumped on one line as a YAML flow list (`- [systemctl, enable, --now, docker]`)."""


class _Dumper(yaml.SafeDumper):
    """Safe YAML, with argv lists on one line and multi-line file contents as literal blocks."""


def _argv(dumper: yaml.SafeDumper, value: _Argv) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(_Argv, _argv)
_Dumper.add_representer(str, _text)


def host_requirements_text(root: Path) -> str:
    """The host agent venv's requirements (agent/requirements.txt under the project root `root`)."""
    return (root / "agent" / "requirements.txt").read_text()


def host_doctor_text(root: Path) -> str:
    """The host agent's doctor (agent/doctor.py under the project root `root`), which cloud-init runs on its own."""
    return (root / "agent" / "doctor.py").read_text()


def render_cloud_init(*, host_root: str, host_requirements: str, host_doctor: str, host_key: str | None,
                      data_volume: str | None = None) -> str:
    """The `#cloud-config` user data of a droplet; `host_key` (an unencrypted OpenSSH private key) replaces the
    image's SSH host keys when given; `data_volume` (the data droplet's block volume) is mounted at
    /var/lib/docker/volumes before docker starts."""
    requirements = f"{host_root}/requirements-host.txt"
    doctor = f"{host_root}/doctor.py"
    venv = f"{host_root}/venv"
    write_files: list[dict[str, Any]] = [
        {"path": requirements, "content": host_requirements, "owner": "root:root", "permissions": "0644"},
        {"path": doctor, "content": host_doctor, "owner": "root:root", "permissions": "0644"},
        {"path": BLOCK_METADATA, "content": BLOCK_METADATA_SCRIPT, "owner": "root:root", "permissions": "0755"},
        {"path": DOCKER_DROP_IN, "content": DOCKER_DROP_IN_TEXT, "owner": "root:root", "permissions": "0644"},
        {"path": INSTALL_COSIGN, "content": install_cosign_script(), "owner": "root:root", "permissions": "0755"},
    ]
    if data_volume is not None:
        write_files += [
            {"path": "/etc/fstab", "content": fstab_line(data_volume), "append": True},
            {"path": DATA_DROP_IN, "content": DATA_DROP_IN_TEXT, "owner": "root:root", "permissions": "0644"},
        ]
    runcmd = [
        _Argv(["systemctl", "daemon-reload"]),
        _Argv(["systemctl", "enable", "--now", "docker"]),
        *([_Argv(["findmnt", DOCKER_VOLUMES])] if data_volume is not None else []),
        _Argv([BLOCK_METADATA]),
        f"{INSTALL_COSIGN} || exit 1",  # a string: the runcmd script stops here, and cloud-init reports the error
        _Argv(["install", "-d", "-m", "0755", "-o", "root", "-g", "root", host_root]),
        _Argv(["python3", "-m", "venv", venv]),
        _Argv([f"{venv}/bin/pip", "install", "-r", requirements]),
        _Argv([f"{venv}/bin/python", doctor, "--requirements", requirements]),
    ]
    doc: dict[str, Any] = {
        "package_update": True,
        "package_upgrade": False,
        "packages": list(PACKAGES),
        "write_files": write_files,
        "runcmd": runcmd,
    }
    if host_key is not None:
        public = public_half(host_key)
        kind = cloud_init_type(public)
        doc |= {"ssh_deletekeys": True,
                "ssh_keys": {f"{kind}_private": host_key, f"{kind}_public": public.line}}
    return "#cloud-config\n" + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=4096)
