"""DigitalOcean Container Registry through DigitalOcean's API (DIGITALOCEAN_TOKEN, read and write): the project's
repositories, every manifest with its tags, blobs and push time, deletes by digest, and the registry's garbage
collection (read-only for its duration; DigitalOcean reports blobs deleted and bytes freed).

Only tagged manifests are candidates, as with the distribution API: DigitalOcean's listing does not say which
untagged manifest is an index's child, so none is deleted, and the collection's type is "unreferenced blobs only"
(DigitalOcean's default). Every image the program pushes is tagged with its release id, every cosign artifact with
`sha256-<hex>.sig`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx

from ops.registry_gc_plan import Blob, Manifest
from ops.registry_v2 import RegistryError

API = "https://api.digitalocean.com"
GC_TYPE = "unreferenced blobs only"
GC_TYPE_UNTAGGED = "untagged manifests and unreferenced blobs"


def gc_type(untagged: bool) -> str:
    """What DigitalOcean's collection removes: blobs no manifest references; with `untagged`, also every manifest
    without a tag (old build caches, but an image index's children too: only for a project that pushes no index)."""
    return GC_TYPE_UNTAGGED if untagged else GC_TYPE
GC_DONE = ("succeeded", "failed", "cancelled")


def repositories_path(registry: str, page: int) -> str:
    return f"/v2/registry/{registry}/repositoriesV2?per_page=100&page={page}"


def manifests_path(registry: str, repo: str, page: int) -> str:
    return f"/v2/registry/{registry}/repositories/{quote(repo, safe='')}/digests?per_page=100&page={page}"


def delete_path(registry: str, repo: str, digest: str) -> str:
    return f"/v2/registry/{registry}/repositories/{quote(repo, safe='')}/digests/{digest}"


def gc_path(registry: str) -> str:
    return f"/v2/registry/{registry}/garbage-collection"


def gcs_path(registry: str) -> str:
    """The registry's garbage collections, newest first (the active one's GET answers 404 once it is done)."""
    return f"/v2/registry/{registry}/garbage-collections?per_page=10&page=1"


def manifest_of(repo: str, item: dict[str, Any]) -> Manifest:
    """One entry of the digests listing as registry-gc sees it (DOCR lists an index's children as manifests too)."""
    blobs = tuple(Blob(str(b["digest"]), int(b.get("compressed_size_bytes") or 0)) for b in item.get("blobs") or [])
    return Manifest(repo, str(item["digest"]), tuple(sorted(item.get("tags") or [])), blobs, (),
                    str(item.get("updated_at") or ""))


class Docr:
    def __init__(self, registry: str, token: str, address: str = "", api: str = API, timeout: float = 60) -> None:
        self.registry, self.address = registry, address or f"registry.digitalocean.com/{registry}"  # the endpoint
        self.client = httpx.Client(base_url=api, timeout=timeout, headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self.client.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self.client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise RegistryError(f"DigitalOcean API {method} {path}: {exc}") from exc
        if response.status_code >= 300:
            raise RegistryError(f"DigitalOcean API {method} {path}: HTTP {response.status_code} {response.text[:300]}")
        data: dict[str, Any] = response.json() if response.content else {}
        return data

    def _pages(self, path: Callable[[int], str], key: str) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            data = self._call("GET", path(page))
            yield from data.get(key) or []
            if not (data.get("links") or {}).get("pages", {}).get("next"):
                return
            page += 1

    def repositories(self, prefix: str) -> list[str]:
        names = (str(r["name"]) for r in self._pages(lambda p: repositories_path(self.registry, p), "repositories"))
        return sorted(n for n in names if not prefix or n.startswith(prefix.strip("/") + "/"))

    def manifests(self, repos: list[str]) -> list[Manifest]:
        return [manifest_of(repo, item) for repo in repos for item in self._repo_pages(repo) if item.get("tags")]

    def _repo_pages(self, repo: str) -> Iterator[dict[str, Any]]:
        return self._pages(lambda page: manifests_path(self.registry, repo, page), "manifests")

    def delete(self, repo: str, digest: str) -> None:
        self._call("DELETE", delete_path(self.registry, repo, digest))

    def collect(self, say: Callable[[str], None], untagged: bool = False, poll: float = 15,
                deadline: float = 2700) -> int:
        """Start the garbage collection and wait for it; returns the bytes DigitalOcean says it freed."""
        gc = self._call("POST", gc_path(self.registry), {"type": gc_type(untagged)}).get("garbage_collection") or {}
        started, last = time.monotonic(), ""
        while str(gc.get("status")) not in GC_DONE:
            if str(gc.get("status")) != last:
                last = str(gc.get("status"))
                say(f"garbage collection {gc.get('uuid')}: {last} ({time.monotonic() - started:.0f}s)")
            if time.monotonic() - started > deadline:
                raise RegistryError(f"garbage collection {gc.get('uuid')} still {last} after {deadline:.0f}s: it "
                                    "goes on at DigitalOcean (`doctl registry garbage-collection get-active`)")
            time.sleep(poll)
            listed = self._call("GET", gcs_path(self.registry)).get("garbage_collections") or []
            gc = next((g for g in listed if g.get("uuid") == gc.get("uuid")), gc)
        if gc.get("status") != "succeeded":
            raise RegistryError(f"garbage collection {gc.get('uuid')} {gc.get('status')}")
        say(f"garbage collection {gc.get('uuid')}: succeeded, {gc.get('blobs_deleted', 0)} blobs deleted")
        return int(gc.get("freed_bytes") or 0)
