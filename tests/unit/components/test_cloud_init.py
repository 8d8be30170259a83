"""The droplet's first boot: exact cloud-init text; no registry credential, containers cut off from the metadata
service, the stack's SSH host key, the pinned cosign with its checksum checked."""

import hashlib
import inspect
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from agent import signing
from components.cloud_init import (
    COSIGN_BINARIES,
    COSIGN_RELEASE_URL,
    COSIGN_VERSION,
    host_doctor_text,
    host_requirements_text,
    install_cosign_script,
    render_cloud_init,
)
from tests.ssh_test_keys import HOST_PRIVATE_KEY, HOST_PUBLIC_KEY

ROOT = Path(__file__).resolve().parents[3]
REQUIREMENTS = "# the agent venv\nhttpx==0.28.1\n"
DOCTOR = "# the host agent's doctor\nimport sys\nsys.exit(0)\n"

METADATA_BLOCK = """\
- path: /usr/local/sbin/devtools-block-metadata
  content: |
    #!/bin/sh
    # Containers must not reach the droplet metadata service: it serves this droplet's user data (its host key).
    iptables -C DOCKER-USER -d 169.254.169.254/32 -j DROP 2>/dev/null ||
      iptables -I DOCKER-USER -d 169.254.169.254/32 -j DROP
  owner: root:root
  permissions: '0755'
- path: /etc/systemd/system/docker.service.d/devtools-block-metadata.conf
  content: |
    # After a reboot docker makes DOCKER-USER anew: every start of docker puts the rule back.
    [Service]
    ExecStartPost=/usr/local/sbin/devtools-block-metadata
  owner: root:root
  permissions: '0644'
"""

INSTALL_COSIGN = """\
#!/bin/sh
# cosign v3.1.3, which verifies every image's signature before a release changes anything: the release
# binary for this machine, pinned by its sha256. A mismatch installs nothing and exits 1.
set -eu
case "$(uname -m)" in
  x86_64) name=cosign-linux-amd64 sha256=4629c757b7618056f8ddd7e2625ae9fdd94c0372a65049520bc7d9df9efc7f71 ;;
  aarch64) name=cosign-linux-arm64 sha256=c5d324e091826b0d7a78eb16fef316450b4eb9aaec045611c08ba06f5e73220a ;;
  *) echo "cosign v3.1.3: no pinned binary for $(uname -m)" >&2; exit 1 ;;
esac
if [ -x /usr/local/bin/cosign ] && [ "$(sha256sum /usr/local/bin/cosign | cut -d' ' -f1)" = "$sha256" ]; then
  exit 0
fi
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
curl -fsSL --retry 5 --retry-all-errors -o "$tmp" "https://github.com/sigstore/cosign/releases/download/v3.1.3/$name"
got=$(sha256sum "$tmp" | cut -d' ' -f1)
if [ "$got" != "$sha256" ]; then
  echo "$name v3.1.3: sha256 $got, expected $sha256: not installed" >&2
  exit 1
fi
install -m 0755 -o root -g root "$tmp" /usr/local/bin/cosign
"""
COSIGN_BLOCK = "- path: /usr/local/sbin/devtools-install-cosign\n  content: |\n" + "".join(
    f"    {line}\n" for line in INSTALL_COSIGN.splitlines()) + "  owner: root:root\n  permissions: '0755'\n"

CLOUD_CONFIG = """\
#cloud-config
package_update: true
package_upgrade: false
packages:
- docker.io
- docker-compose-v2
- python3
- python3-venv
- ca-certificates
- curl
write_files:
- path: /opt/devtools/requirements-host.txt
  content: |
    # the agent venv
    httpx==0.28.1
  owner: root:root
  permissions: '0644'
- path: /opt/devtools/doctor.py
  content: |
    # the host agent's doctor
    import sys
    sys.exit(0)
  owner: root:root
  permissions: '0644'
""" + METADATA_BLOCK + COSIGN_BLOCK + """\
runcmd:
- [systemctl, daemon-reload]
- [systemctl, enable, --now, docker]
- [/usr/local/sbin/devtools-block-metadata]
- /usr/local/sbin/devtools-install-cosign || exit 1
- [install, -d, -m, '0755', -o, root, -g, root, /opt/devtools]
- [python3, -m, venv, /opt/devtools/venv]
- [/opt/devtools/venv/bin/pip, install, -r, /opt/devtools/requirements-host.txt]
- [/opt/devtools/venv/bin/python, /opt/devtools/doctor.py, --requirements, /opt/devtools/requirements-host.txt]
"""


def render(host_root: str = "/opt/devtools", requirements: str = REQUIREMENTS, doctor: str = DOCTOR,
           host_key: str | None = None, data_volume: str | None = None) -> str:
    return render_cloud_init(host_root=host_root, host_requirements=requirements, host_doctor=doctor,
                             host_key=host_key, data_volume=data_volume)


HOST_KEY_TAIL = """\
ssh_deletekeys: true
ssh_keys:
  ed25519_private: |
    -----BEGIN OPENSSH PRIVATE KEY-----
    b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
    QyNTUxOQAAACBIVPJFNX+XHjEkavxoiwHyxOz/Kz3FJdcok8eM0mBGogAAAJgHpeXoB6Xl
    6AAAAAtzc2gtZWQyNTUxOQAAACBIVPJFNX+XHjEkavxoiwHyxOz/Kz3FJdcok8eM0mBGog
    AAAEBinI0rSqvdmb87bZlYvKUy82GZ3rKZA63ldZjwhhHxtkhU8kU1f5ceMSRq/GiLAfLE
    7P8rPcUl1yiTx4zSYEaiAAAAEmRldnRvb2xzLWhvc3QtdGVzdAECAw==
    -----END OPENSSH PRIVATE KEY-----
  ed25519_public: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEhU8kU1f5ceMSRq/GiLAfLE7P8rPcUl1yiTx4zSYEai
"""


def test_with_a_host_key_exact_text():
    """The droplet's SSH host key comes from the stack (devtools:sshHostPrivateKey): cloud-init deletes the
    image's keys and writes this one, so the key the rollout and ops.cli pin is the key sshd presents from its
    first start. cloud-init generates no other key types when ssh_keys is given."""
    assert render(host_key=HOST_PRIVATE_KEY) == CLOUD_CONFIG + HOST_KEY_TAIL
    doc = yaml.safe_load(render(host_key=HOST_PRIVATE_KEY))
    assert doc["ssh_keys"] == {"ed25519_private": HOST_PRIVATE_KEY, "ed25519_public": HOST_PUBLIC_KEY}


def test_exact_text():
    """Docker, compose v2 and the agent venv at <hostRoot>/venv (where ops.ship.agent_command runs the agent),
    then the agent's doctor as the last step, so the bootstrap ends with its verdict. No registry credential: user
    data is readable from the metadata service, copied into snapshots and never updated on a running droplet, so
    the rollout hands expiring credentials over SSH instead (agent.registry_auth)."""
    assert render() == CLOUD_CONFIG


def test_containers_cannot_reach_the_metadata_service():
    """169.254.169.254 serves this droplet's user data (the host key) to anyone who asks, a container included.
    A DOCKER-USER rule drops containers' packets to it, put in place at every start of docker (a systemd drop-in:
    docker makes the chain anew after a reboot), checked before it is inserted so a restart adds no second copy,
    and applied once more right after docker is enabled."""
    doc = yaml.safe_load(render())
    files = {f["path"]: f for f in doc["write_files"]}
    script = files["/usr/local/sbin/devtools-block-metadata"]
    assert script["permissions"] == "0755"
    assert script["content"].splitlines()[-2:] == [
        "iptables -C DOCKER-USER -d 169.254.169.254/32 -j DROP 2>/dev/null ||",
        "  iptables -I DOCKER-USER -d 169.254.169.254/32 -j DROP"]
    assert files["/etc/systemd/system/docker.service.d/devtools-block-metadata.conf"]["content"].endswith(
        "[Service]\nExecStartPost=/usr/local/sbin/devtools-block-metadata\n")
    assert doc["runcmd"][:3] == [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "docker"],
                                 ["/usr/local/sbin/devtools-block-metadata"]]


def test_no_credential_and_no_docker_config_in_user_data():
    """The renderer takes no registry credential at all, and writes no docker config."""
    assert list(inspect.signature(render_cloud_init).parameters) == ["host_root", "host_requirements",
                                                                     "host_doctor", "host_key", "data_volume"]
    assert "/root/.docker" not in render(host_key=HOST_PRIVATE_KEY) and "auths" not in render()


def test_round_trip_keeps_contents_byte_for_byte():
    """What the droplet writes is exactly what was rendered: quotes, colons and newlines survive YAML."""
    tricky_reqs = "httpx==0.28.1  # pinned: 'yes'\n\n- odd: line\n"
    doctor = host_doctor_text(ROOT)
    doc = yaml.safe_load(render(host_root="/srv/dev tools", requirements=tricky_reqs, doctor=doctor,
                                host_key=HOST_PRIVATE_KEY))
    files = {f["path"]: f["content"] for f in doc["write_files"]}
    assert (files["/srv/dev tools/requirements-host.txt"], files["/srv/dev tools/doctor.py"]) == (tricky_reqs, doctor)
    assert sorted(files) == ["/etc/systemd/system/docker.service.d/devtools-block-metadata.conf",
                             "/srv/dev tools/doctor.py", "/srv/dev tools/requirements-host.txt",
                             "/usr/local/sbin/devtools-block-metadata", "/usr/local/sbin/devtools-install-cosign"]
    assert doc["ssh_keys"]["ed25519_private"] == HOST_PRIVATE_KEY
    assert doc["runcmd"][-2] == ["/srv/dev tools/venv/bin/pip", "install", "-r",
                                 "/srv/dev tools/requirements-host.txt"]
    assert doc["runcmd"][-1] == ["/srv/dev tools/venv/bin/python", "/srv/dev tools/doctor.py", "--requirements",
                                 "/srv/dev tools/requirements-host.txt"]


def test_document_starts_with_the_cloud_config_header():
    """Without `#cloud-config` on the first line cloud-init ignores the whole document."""
    assert render().splitlines()[0] == "#cloud-config"
    assert render(host_key=HOST_PRIVATE_KEY).splitlines()[0] == "#cloud-config"


def test_host_requirements_text_reads_the_agent_requirements():
    """The venv gets the validator's dependencies from the same file the local stand-in installs."""
    text = host_requirements_text(ROOT)
    assert text == (ROOT / "agent" / "requirements.txt").read_text()
    assert "httpx==" in text


def test_host_doctor_text_is_the_agents_own_doctor():
    """cloud-init runs the code `hostagent doctor` runs later (agent/doctor.py, standard library only), and the
    real file survives YAML as a readable literal block, byte for byte."""
    text = host_doctor_text(ROOT)
    assert text == (ROOT / "agent" / "doctor.py").read_text()
    rendered = render(doctor=text)
    assert "- path: /opt/devtools/doctor.py\n  content: |\n    \"\"\"Does this host have what" in rendered
    assert yaml.safe_load(rendered)["write_files"][1] == {"path": "/opt/devtools/doctor.py", "content": text,
                                                          "owner": "root:root", "permissions": "0644"}


FSTAB = ("/dev/disk/by-id/scsi-0DO_Volume_devtools-prod-data /var/lib/docker/volumes ext4 "
         "defaults,nofail,discard,x-systemd.device-timeout=10min 0 2")
DATA_FILES = f"""\
- path: /etc/fstab
  content: |
    {FSTAB}
  append: true
- path: /etc/systemd/system/docker.service.d/devtools-data-volume.conf
  content: |
    # The data tier's named volumes live on the block volume: docker starts only once it is mounted.
    [Unit]
    RequiresMountsFor=/var/lib/docker/volumes
  owner: root:root
  permissions: '0644'
"""


def test_the_data_droplet_mounts_its_volume_under_dockers_volumes_exact_text():
    """Every named volume of the data project lives on the block volume, so it survives the droplet's replacement.
    The volume is mounted at /var/lib/docker/volumes by the stable name of its device (an fstab entry appended,
    waiting for the attachment, which DigitalOcean makes after the droplet exists; `nofail` lets the droplet boot
    without it), and docker requires that mount: the package's own start of docker (before runcmd) waits for it,
    and a docker that cannot have it does not start, so nothing is ever written to the droplet's own disk instead
    (the doctor, last, then finds docker not answering)."""
    runcmd = "runcmd:\n- [systemctl, daemon-reload]\n- [systemctl, enable, --now, docker]\n"
    expected = CLOUD_CONFIG.replace(runcmd, DATA_FILES + runcmd + "- [findmnt, /var/lib/docker/volumes]\n")
    assert expected != CLOUD_CONFIG
    assert render(data_volume="devtools-prod-data") == expected
    assert render(host_key=HOST_PRIVATE_KEY, data_volume="devtools-prod-data") == expected + HOST_KEY_TAIL
    fstab = yaml.safe_load(expected)["write_files"][5]
    assert fstab["path"] == "/etc/fstab"
    assert fstab["content"].split() == ["/dev/disk/by-id/scsi-0DO_Volume_devtools-prod-data",
                                        "/var/lib/docker/volumes", "ext4",
                                        "defaults,nofail,discard,x-systemd.device-timeout=10min", "0", "2"]


def test_the_cosign_install_script_exact_text():
    """The pinned release for this machine's architecture (uname -m), its sha256 compared before anything is
    installed; nothing downloaded when the pinned binary is already in place."""
    assert install_cosign_script() == INSTALL_COSIGN
    assert COSIGN_VERSION == "v3.1.3"
    assert COSIGN_RELEASE_URL == "https://github.com/sigstore/cosign/releases/download/v3.1.3"
    assert sorted(COSIGN_BINARIES) == ["aarch64", "x86_64"]


def test_cosign_goes_where_the_host_agent_runs_it_and_a_mismatch_fails_cloud_init():
    """The installed path is the agent's (agent.signing.COSIGN), and the runcmd entry stops the runcmd script
    with an error when the script fails, so the droplet shows as a cloud-init failure (components.commands'
    cloud-init wait reports it) rather than a host that cannot verify; before the doctor (the last step)."""
    doc = yaml.safe_load(render())
    script = {f["path"]: f for f in doc["write_files"]}["/usr/local/sbin/devtools-install-cosign"]
    assert (script["permissions"], script["owner"]) == ("0755", "root:root")
    assert script["content"].splitlines()[-1] == f'install -m 0755 -o root -g root "$tmp" {signing.COSIGN}'
    assert signing.COSIGN == "/usr/local/bin/cosign"
    entry = "/usr/local/sbin/devtools-install-cosign || exit 1"
    assert doc["runcmd"].count(entry) == 1
    assert doc["runcmd"].index(entry) < len(doc["runcmd"]) - 1


def _machine(tmp_path: Path, arch: str, payload: bytes) -> tuple[Path, dict[str, str]]:
    """The script with its destination moved into tmp_path, and stand-ins for uname, curl (writes `payload`; no
    network) and install (copies, logs its argv; no root needed) ahead of the real tools on PATH."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (tmp_path / "payload").write_bytes(payload)
    (fake / "uname").write_text(f"#!/bin/sh\necho {arch}\n")
    (fake / "curl").write_text(f'#!/bin/sh\necho "$@" >>{tmp_path}/curl.log\n'
                               f'while [ "$1" != -o ]; do shift; done\ncp {tmp_path}/payload "$2"\n')
    (fake / "install").write_text(f'#!/bin/sh\necho "$@" >>{tmp_path}/install.log\n'
                                  'cp "$7" "$8" && chmod "$2" "$8"\n')
    for tool in fake.iterdir():
        tool.chmod(0o755)
    script = tmp_path / "install-cosign"
    script.write_text(install_cosign_script().replace(signing.COSIGN, str(tmp_path / "cosign")))
    return script, {"PATH": f"{fake}:/usr/bin:/bin"}


@pytest.mark.live
@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_the_cosign_script_in_a_real_shell_installs_only_what_matches(tmp_path, arch):
    payload = b"not the release binary\n"
    script, env = _machine(tmp_path, arch, payload)
    name, digest = COSIGN_BINARIES[arch]
    bad = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=30, check=False, env=env)
    assert bad.returncode == 1
    assert bad.stderr == (f"{name} v3.1.3: sha256 {hashlib.sha256(payload).hexdigest()}, expected {digest}: "
                          "not installed\n")
    assert re.fullmatch(rf"-fsSL --retry 5 --retry-all-errors -o \S+ {re.escape(COSIGN_RELEASE_URL)}/{name}\n",
                        (tmp_path / "curl.log").read_text())
    assert not (tmp_path / "install.log").exists() and not (tmp_path / "cosign").exists()
    # the same script with the payload's own digest pinned installs it
    script.write_text(script.read_text().replace(digest, hashlib.sha256(payload).hexdigest()))
    good = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=30, check=False, env=env)
    assert (good.returncode, good.stderr) == (0, "")
    assert (tmp_path / "cosign").read_bytes() == payload
    assert (tmp_path / "install.log").read_text().split()[:6] == ["-m", "0755", "-o", "root", "-g", "root"]
    # in place already: nothing downloaded again
    again = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=30, check=False, env=env)
    assert again.returncode == 0 and len((tmp_path / "curl.log").read_text().splitlines()) == 2


@pytest.mark.live
def test_the_cosign_script_refuses_a_machine_without_a_pinned_binary(tmp_path):
    script, env = _machine(tmp_path, "riscv64", b"")
    proc = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=30, check=False, env=env)
    assert (proc.returncode, proc.stderr) == (1, "cosign v3.1.3: no pinned binary for riscv64\n")
    assert not (tmp_path / "curl.log").exists()
