"""The droplet's first boot: exact cloud-init text; registry credentials only in a 0600 file, never in a command."""

from pathlib import Path

import yaml

from components.cloud_init import host_doctor_text, host_requirements_text, render_cloud_init
from tests.ssh_test_keys import HOST_PRIVATE_KEY, HOST_PUBLIC_KEY

ROOT = Path(__file__).resolve().parents[3]
REQUIREMENTS = "# the agent venv\nhttpx==0.28.1\n"
DOCTOR = "# the host agent's doctor\nimport sys\nsys.exit(0)\n"
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
- path: /opt/devtools/doctor.py
  content: |
    # the host agent's doctor
    import sys
    sys.exit(0)
  owner: root:root
  permissions: '0644'
runcmd:
- [systemctl, enable, --now, docker]
- [install, -d, -m, '0755', -o, root, -g, root, /opt/devtools]
- [python3, -m, venv, /opt/devtools/venv]
- [/opt/devtools/venv/bin/pip, install, -r, /opt/devtools/requirements-host.txt]
- [/opt/devtools/venv/bin/python, /opt/devtools/doctor.py, --requirements, /opt/devtools/requirements-host.txt]
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
- path: /opt/devtools/doctor.py
  content: |
    # the host agent's doctor
    import sys
    sys.exit(0)
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
- [/opt/devtools/venv/bin/python, /opt/devtools/doctor.py, --requirements, /opt/devtools/requirements-host.txt]
"""


def render(pull_auth: str | None, host_root: str = "/opt/devtools", requirements: str = REQUIREMENTS,
           doctor: str = DOCTOR, host_key: str | None = None) -> str:
    return render_cloud_init(host_root=host_root, host_requirements=requirements, host_doctor=doctor,
                             pull_auth=pull_auth, host_key=host_key)


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
    assert render(None, host_key=HOST_PRIVATE_KEY) == WITHOUT_AUTH + HOST_KEY_TAIL
    doc = yaml.safe_load(render(None, host_key=HOST_PRIVATE_KEY))
    assert doc["ssh_keys"] == {"ed25519_private": HOST_PRIVATE_KEY, "ed25519_public": HOST_PUBLIC_KEY}


def test_without_pull_auth_exact_text():
    """Docker, compose v2 and the agent venv at <hostRoot>/venv (where ops.ship.agent_command runs the agent),
    then the agent's doctor as the last step, so the bootstrap ends with its verdict; no docker config is written
    when there are no credentials."""
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
    doctor = host_doctor_text(ROOT)
    doc = yaml.safe_load(render(tricky_auth, host_root="/srv/dev tools", requirements=tricky_reqs, doctor=doctor))
    files = {f["path"]: f["content"] for f in doc["write_files"]}
    assert files == {"/srv/dev tools/requirements-host.txt": tricky_reqs, "/srv/dev tools/doctor.py": doctor,
                     "/root/.docker/config.json": tricky_auth}
    assert doc["runcmd"][-2] == ["/srv/dev tools/venv/bin/pip", "install", "-r",
                                 "/srv/dev tools/requirements-host.txt"]
    assert doc["runcmd"][-1] == ["/srv/dev tools/venv/bin/python", "/srv/dev tools/doctor.py", "--requirements",
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


def test_host_doctor_text_is_the_agents_own_doctor():
    """cloud-init runs the code `hostagent doctor` runs later (agent/doctor.py, standard library only), and the
    real file survives YAML as a readable literal block, byte for byte."""
    text = host_doctor_text(ROOT)
    assert text == (ROOT / "agent" / "doctor.py").read_text()
    rendered = render(None, doctor=text)
    assert "- path: /opt/devtools/doctor.py\n  content: |\n    \"\"\"Does this host have what" in rendered
    assert yaml.safe_load(rendered)["write_files"][1] == {"path": "/opt/devtools/doctor.py", "content": text,
                                                          "owner": "root:root", "permissions": "0644"}
