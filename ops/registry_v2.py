"""A registry that speaks the distribution API (the local stand-in's registry 2.8): the project's repositories,
their tagged manifests (and an index's children), the build time from each image's config, deletes by digest.

Only tagged manifests are listed: the API has no "list manifests" call, and every image the program pushes is tagged
with its release id (components/images.py), every cosign artifact with `sha256-<hex>.sig`. The registry's garbage
collection then runs without --delete-untagged, so an untagged manifest is never collected behind our back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from ops.registry_gc_plan import Blob, Manifest

ACCEPT = ", ".join(("application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json",
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json"))


class RegistryError(Exception):
    """The registry answered something registry-gc cannot work with; the message says what and where."""


class RegistryV2:
    def __init__(self, address: str, scheme: str = "http", timeout: float = 30) -> None:
        self.address = address
        self.client = httpx.Client(base_url=f"{scheme}://{address}", timeout=timeout)

    def close(self) -> None:
        self.client.close()

    def _get(self, path: str, **headers: str) -> httpx.Response:
        try:
            response = self.client.get(path, headers=headers)
        except httpx.HTTPError as exc:
            raise RegistryError(f"registry {self.address}: GET {path}: {exc}") from exc
        if response.status_code != 200:
            raise RegistryError(f"registry {self.address}: GET {path}: HTTP {response.status_code} "
                                f"{response.text[:200]}")
        return response

    def _pages(self, path: str, key: str) -> Iterator[str]:
        while path:
            response = self._get(path)
            yield from response.json().get(key) or []
            link = response.headers.get("link", "")
            path = link.split(";")[0].strip("<> ") if 'rel="next"' in link else ""

    def repositories(self, prefix: str) -> list[str]:
        """The repositories under `prefix/` (all of them when the prefix is empty)."""
        return sorted(r for r in self._pages("/v2/_catalog?n=1000", "repositories")
                      if not prefix or r.startswith(prefix.strip("/") + "/"))

    def manifests(self, repos: list[str], parallel: int = 8) -> list[Manifest]:
        """Every tagged manifest of the repositories, and each index's children."""
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            return [m for found in pool.map(self._repo_manifests, repos) for m in found]

    def _repo_manifests(self, repo: str) -> list[Manifest]:
        by_digest: dict[str, tuple[list[str], dict[str, Any]]] = {}
        for tag in self._pages(f"/v2/{repo}/tags/list?n=1000", "tags"):
            digest, body = self._manifest(repo, tag)
            by_digest.setdefault(digest, ([], body))[0].append(tag)
        found: list[Manifest] = []
        todo = [(d, tuple(sorted(tags)), body) for d, (tags, body) in by_digest.items()]
        seen = set(by_digest)
        while todo:
            digest, tags, body = todo.pop()
            children = tuple(str(c["digest"]) for c in body.get("manifests") or [])
            for child in children:
                if child not in seen:
                    seen.add(child)
                    todo.append((child, (), self._manifest(repo, child)[1]))
            found.append(Manifest(repo, digest, tags, _blobs(body), children, self._created(repo, body)))
        return sorted(found, key=lambda m: (m.tags, m.digest))

    def _manifest(self, repo: str, reference: str) -> tuple[str, dict[str, Any]]:
        response = self._get(f"/v2/{repo}/manifests/{reference}", Accept=ACCEPT)
        digest = response.headers.get("docker-content-digest", "")
        if not digest.startswith("sha256:"):
            raise RegistryError(f"registry {self.address}: {repo}:{reference} has no Docker-Content-Digest")
        body: dict[str, Any] = response.json()
        return digest, body

    def _created(self, repo: str, body: dict[str, Any]) -> str:
        config = body.get("config") or {}
        if "image.config" not in str(config.get("mediaType", "")) and "container.image" not in str(
                config.get("mediaType", "")):
            return ""  # an index, or a cosign artifact: no build time of its own
        try:
            created = json.loads(self._get(f"/v2/{repo}/blobs/{config['digest']}").content).get("created")
        except (RegistryError, ValueError, KeyError):
            return ""
        return str(created or "")

    def delete(self, repo: str, digest: str) -> None:
        try:
            response = self.client.delete(f"/v2/{repo}/manifests/{digest}")
        except httpx.HTTPError as exc:
            raise RegistryError(f"registry {self.address}: DELETE {repo}@{digest}: {exc}") from exc
        if response.status_code == 405:
            raise RegistryError(f"registry {self.address} refuses deletes (HTTP 405): its config needs "
                                "storage.delete.enabled: true (scripts/local-env.sh up writes it)")
        if response.status_code not in (202, 404):  # 404: gone already (an index's child deleted with it)
            raise RegistryError(f"registry {self.address}: DELETE {repo}@{digest}: HTTP {response.status_code} "
                                f"{response.text[:200]}")

    def exists(self, repo: str, reference: str, kind: str = "manifests") -> bool:
        response = self.client.head(f"/v2/{repo}/{kind}/{reference}", headers={"Accept": ACCEPT})
        return response.status_code == 200


def _blobs(body: dict[str, Any]) -> tuple[Blob, ...]:
    parts = [body.get("config")] if body.get("config") else []
    parts += body.get("layers") or []
    return tuple(Blob(str(p["digest"]), int(p.get("size") or 0)) for p in parts if isinstance(p, dict))
