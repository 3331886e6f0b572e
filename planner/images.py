"""Decide every image and chart reference the program renders: upstream, or from the stack's mirror (`images`).

A cluster without internet egress pulls from a mirror. A single string prefix cannot serve every upstream: Docker
Hub's official images live under `library/`, and an ECR pull-through cache names one prefix per upstream registry
(docker.io, registry.k8s.io, ...) while nvcr.io has no cache rule at all and must be copied. So an upstream reference
`<host>/<path>:<tag>` becomes `<mirror of host>/<path>:<tag>`, where the mirror of a host is `images.mirrors[host]`
or `<images.registry>/<host>`. Charts move to an OCI registry (`images.charts`, default `oci://<registry>/charts`).
"""

from __future__ import annotations

from dataclasses import dataclass

from planner import catalogs
from planner.config import Images

DOCKER_HUB = "docker.io"
# Hosts Docker Hub is also known by; an image without a host is on Docker Hub.
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


@dataclass(frozen=True)
class ImageRef:
    host: str
    path: str  # repository path on that host (Docker Hub official images: library/<name>)
    tag: str  # ':tag', '@sha256:...', or both ('' when neither)

    @property
    def reference(self) -> str:
        return f"{self.host}/{self.path}{self.tag}"


@dataclass(frozen=True)
class ChartSource:
    """Where Helm finds a chart: an HTTP repository and the chart's name, or an OCI URL (repository None)."""

    chart: str
    version: str
    repository: str | None

    @property
    def ecrRegistry(self) -> str | None:
        """The ECR registry host of an OCI chart (Helm logs in with an ECR token there), else None."""
        if self.repository is not None or not self.chart.startswith("oci://"):
            return None
        host = self.chart.removeprefix("oci://").split("/", 1)[0]
        return host if ".dkr.ecr." in host else None


def parse_image(image: str) -> ImageRef:
    """Split an image reference the way container runtimes do: the first path part is a host only if it has a '.'
    or ':' or is 'localhost'; otherwise the image is on Docker Hub (and a one-part name is an official image)."""
    name, tag = image, ""
    if "@" in name:
        name, digest = name.split("@", 1)
        tag = "@" + digest
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, version = name.rsplit(":", 1)
        tag = f":{version}{tag}"
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = DOCKER_HUB, name
    if host in DOCKER_HUB_ALIASES:
        host = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    return ImageRef(host, path, tag)


def mirror_prefix(host: str, images: Images) -> str | None:
    """The prefix that replaces an upstream host, or None when the stack pulls from upstream."""
    if host in images.mirrors:
        return images.mirrors[host]
    return f"{images.registry}/{host}" if images.registry else None


def image_ref(image: str, images: Images) -> str:
    """The reference a pod pulls: the upstream image as written, or its mirrored path."""
    ref = parse_image(image)
    prefix = mirror_prefix(ref.host, images)
    return image if prefix is None else f"{prefix}/{ref.path}{ref.tag}"


def split_image(image: str) -> tuple[str, str]:
    """(repository, tag) of a reference as Helm charts take them (image.repository, image.tag)."""
    ref = parse_image(image)
    repository = image[: len(image) - len(ref.tag)] if ref.tag and image.endswith(ref.tag) else image
    return repository, ref.tag.lstrip(":").split("@", 1)[0]


def chart_source(chart: str, repository: str, version: str, images: Images) -> ChartSource:
    """The upstream Helm repository, or the chart's OCI location in the mirror."""
    oci = images.charts or (f"oci://{images.registry}/charts" if images.registry else None)
    if oci is None:
        return ChartSource(chart, version, repository)
    return ChartSource(f"{oci}/{chart}", version, None)


def mirrored(images: Images) -> bool:
    return bool(images.registry or images.mirrors or images.charts)


def check_image(images: Images) -> str:
    """The endpoint check Job's image (the shipped checker needs only the standard library)."""
    return image_ref(catalogs.eks().checkImage, images)


def upstream_artifacts() -> list[str]:
    """Everything a mirror must hold besides the vLLM image(s) the stack names: images and charts, upstream names.
    The Cluster Autoscaler's tag depends on the cluster's Kubernetes minor (one line per minor)."""
    eks = catalogs.eks()
    plugin, autoscaler = eks.devicePlugin, eks.clusterAutoscaler
    out = [eks.checkImage, plugin.image, f"chart {plugin.repository} {plugin.chart} {plugin.version}"]
    for minor, (chart, tag) in sorted(autoscaler.byKubernetes.items()):
        out.append(f"Kubernetes {minor}: {autoscaler.image}:{tag}, chart {autoscaler.repository} {autoscaler.chart} {chart}")
    return out
