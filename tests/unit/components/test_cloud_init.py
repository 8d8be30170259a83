"""The droplet's first boot: exact cloud-init text; registry credentials only in a 0600 file, never in a command."""

from pathlib import Path

import yaml

from components.cloud_init import host_requirements_text, render_cloud_init

ROOT = Path(__file__).resolve().parents[3]
REQUIREMENTS = "# the agent venv\nhttpx==0.28.1\n"
PULL_AUTH = '{"auths": {"registry.digitalocean.com": {"auth": "ZG8tcmVhZDpzM2NyZXQ="}}}'

WITHOUT_AUTH = """\
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
runcmd:
- [systemctl, enable, --now, docker]
- [install, -d, -m, '0755', -o, root, -g, root, /opt/devtools]
- [python3, -m, venv, /opt/devtools/venv]
- [/opt/devtools/venv/bin/pip, install, -r, /opt/devtools/requirements-host.txt]
"""

WITH_AUTH = """\
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
- path: /root/.docker/config.json
  content: '{"auths": {"registry.digitalocean.com": {"auth": "ZG8tcmVhZDpzM2NyZXQ="}}}'
  owner: root:root
  permissions: '0600'
runcmd:
- [systemctl, enable, --now, docker]
- [chmod, '0700', /root/.docker]
- [install, -d, -m, '0755', -o, root, -g, root, /opt/devtools]
- [python3, -m, venv, /opt/devtools/venv]
- [/opt/devtools/venv/bin/pip, install, -r, /opt/devtools/requirements-host.txt]
"""


def render(pull_auth: str | None, host_root: str = "/opt/devtools", requirements: str = REQUIREMENTS) -> str:
    return render_cloud_init(host_root=host_root, host_requirements=requirements, pull_auth=pull_auth)


def test_without_pull_auth_exact_text():
    """Docker, compose v2 and the agent venv at <hostRoot>/venv (where ops.ship.agent_command runs the agent);
    no docker config is written when there are no credentials."""
    assert render(None) == WITHOUT_AUTH


def test_with_pull_auth_exact_text():
    """The credentials go to /root/.docker/config.json, root-owned 0600 in a 0700 directory."""
    assert render(PULL_AUTH) == WITH_AUTH


def test_pull_auth_appears_only_in_the_0600_write_files_entry():
    """cloud-init logs runcmd; a credential in a command line would end up in /var/log/cloud-init-output.log."""
    text = render(PULL_AUTH)
    assert text.count("ZG8tcmVhZDpzM2NyZXQ=") == 1
    doc = yaml.safe_load(text)
    holders = [f for f in doc["write_files"] if "ZG8tcmVhZDpzM2NyZXQ=" in f["content"]]
    assert holders == [{"path": "/root/.docker/config.json", "content": PULL_AUTH, "owner": "root:root",
                        "permissions": "0600"}]
    assert not any("ZG8tcmVhZDpzM2NyZXQ=" in arg for argv in doc["runcmd"] for arg in argv)


def test_round_trip_keeps_contents_byte_for_byte():
    """What the droplet writes is exactly what was rendered: quotes, colons and newlines survive YAML."""
    tricky_auth = '{\n  "auths": {"r.example:5000": {"auth": "a\'b: #c"}}\n}'
    tricky_reqs = "httpx==0.28.1  # pinned: 'yes'\n\n- odd: line\n"
    doc = yaml.safe_load(render(tricky_auth, host_root="/srv/dev tools", requirements=tricky_reqs))
    files = {f["path"]: f["content"] for f in doc["write_files"]}
    assert files == {"/srv/dev tools/requirements-host.txt": tricky_reqs, "/root/.docker/config.json": tricky_auth}
    assert doc["runcmd"][-1] == ["/srv/dev tools/venv/bin/pip", "install", "-r",
                                 "/srv/dev tools/requirements-host.txt"]


def test_document_starts_with_the_cloud_config_header():
    """Without `#cloud-config` on the first line cloud-init ignores the whole document."""
    assert render(None).splitlines()[0] == "#cloud-config"
    assert render(PULL_AUTH).splitlines()[0] == "#cloud-config"


def test_host_requirements_text_reads_the_agent_requirements():
    """The venv gets the validator's dependencies from the same file the local stand-in installs."""
    text = host_requirements_text(ROOT)
    assert text == (ROOT / "agent" / "requirements.txt").read_text()
    assert "httpx==" in text
