"""Real cosign key pairs and signatures for the e2e and engine tests: keys made by `cosign generate-key-pair` in a
test's directory, images signed with the program's own command (components.commands.sign_argv: the key and its
password in cosign's environment, never in argv), the registry asked whether it holds a digest's signature."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from agent.signing import COSIGN
from components.commands import COSIGN_KEY_ENV, COSIGN_PASSWORD_ENV, sign_argv

PASSWORD = "test-only-password"


def cosign() -> str:
    """The pinned cosign the host agent runs (scripts/signing-local.sh installs it), else the one on PATH."""
    found = COSIGN if Path(COSIGN).is_file() else shutil.which("cosign")
    assert found, f"cosign not found at {COSIGN} or on PATH: run scripts/signing-local.sh up"
    return found


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path

    def sign(self, ref: str) -> None:
        """Sign `ref` (repo@sha256:…) and push the signature next to the image, offline (no transparency log)."""
        env = {**os.environ, COSIGN_KEY_ENV: self.private.read_text(), COSIGN_PASSWORD_ENV: PASSWORD}
        proc = subprocess.run([cosign(), *sign_argv(ref)[1:]], capture_output=True, text=True, env=env,
                              timeout=120, check=False)
        assert proc.returncode == 0, f"cosign sign {ref}: {proc.stderr}"


def key_pair(directory: Path, name: str) -> KeyPair:
    """A fresh encrypted key pair `name`.key / `name`.pub in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([cosign(), "generate-key-pair", "--output-key-prefix", str(directory / name)],
                          capture_output=True, text=True, env={**os.environ, "COSIGN_PASSWORD": PASSWORD},
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return KeyPair(directory / f"{name}.key", directory / f"{name}.pub")


def signature_tag(ref: str) -> tuple[str, str, str]:
    """(registry, repository, tag) where cosign stores the signature of `ref`: `sha256-<hex>.sig`."""
    repo, digest = ref.split("@", 1)
    registry, repository = repo.split("/", 1)
    return registry, repository, digest.replace(":", "-") + ".sig"


def registry_holds_signature(ref: str) -> bool:
    registry, repository, tag = signature_tag(ref)
    answer = httpx.head(f"http://{registry}/v2/{repository}/manifests/{tag}", timeout=10, trust_env=False,
                        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    return answer.status_code == 200
