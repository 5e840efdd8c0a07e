"""The resource model, kops' style: each desired resource can find its actual object,
say which fields differ, and create or update it; each kind can scan for everything the
cluster owns and delete one object.

A desired resource names others through ``Ref("logical-name")``; the context resolves a
reference to the real id once that resource was found or created, and to a ``Pending``
placeholder while planning something that does not exist yet.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kpyops.clouds.aws.errors import AwsError
from kpyops.clouds.aws.session import AwsSession

TAG_CLUSTER = "kpyops.io/cluster"
TAG_RESOURCE = "kpyops.io/resource"
# The cluster's id in its state store (written by create): a cluster of the same name kept
# in another store has another id, and never sees, adopts or deletes these resources.
TAG_OWNER = "kpyops.io/owner"


def k8s_tag(cluster: str) -> str:
    return f"kubernetes.io/cluster/{cluster}"


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Pending:
    """The id of a resource that apply will create."""

    name: str

    def __repr__(self) -> str:
        return f"<{self.name}: known after apply>"


@dataclass
class Actual:
    id: str
    fields: dict[str, Any]
    raw: dict = field(default_factory=dict)


@dataclass
class Found:
    """An object a scan found tagged for the cluster."""

    kind: str
    id: str
    name: str  # logical name (kpyops.io/resource), or the AWS name
    state: str = ""  # e.g. "shutting-down": already going, wait for it
    shared: bool = False  # tagged shared: untag, never delete
    extra: dict = field(default_factory=dict)

    def label(self) -> str:
        return f"{self.kind} {self.name} ({self.id})"


class Context:
    """What a plan or apply run shares: the session, the cluster's name and known ids."""

    def __init__(self, session: AwsSession, cluster: str, extra_tags: dict[str, str] | None = None,
                 owner: str | None = None):
        self.session = session
        self.cluster = cluster
        self.extra_tags = dict(extra_tags or {})
        self.owner = owner  # None: a cluster created before ids existed (tags by name only)
        self.ids: dict[str, str] = {}
        self.actuals: dict[str, Actual] = {}
        self.dns: tuple[str, str, str] | None = None  # (zone, record, load balancer name)

    def call(self, service: str, operation: str, **kwargs) -> dict:
        return self.session.call(service, operation, **kwargs)

    def pages(self, service: str, operation: str, key: str, **kwargs):
        return self.session.pages(service, operation, key, **kwargs)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, Ref):
            return self.ids.get(value.name) or Pending(value.name)
        if isinstance(value, list | tuple):
            return type(value)(self.resolve(v) for v in value)
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    def tags(self, name: str, *, shared: bool = False) -> dict[str, str]:
        return {
            **self.extra_tags,
            "Name": f"{self.cluster}-{name}",
            TAG_CLUSTER: self.cluster,
            TAG_RESOURCE: name,
            k8s_tag(self.cluster): "shared" if shared else "owned",
            **({TAG_OWNER: self.owner} if self.owner else {}),
        }

    def tag_list(self, name: str, **kw) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in self.tags(name, **kw).items()]

    def tag_specs(self, resource_type: str, name: str) -> list[dict]:
        return [{"ResourceType": resource_type, "Tags": self.tag_list(name)}]

    def owns(self, item: dict, name: str | None = None) -> bool:
        """Check tags client-side too: not every endpoint honours every tag filter."""
        tags = tag_dict(item.get("Tags"))
        return self.owns_tags(tags) and (name is None or tags.get(TAG_RESOURCE) == name)

    def owns_tags(self, tags: dict[str, str]) -> bool:
        """Tagged for this cluster, and (once it has an id) for this cluster's store."""
        return tags.get(TAG_CLUSTER) == self.cluster and (
            self.owner is None or tags.get(TAG_OWNER) == self.owner)

    def foreign(self, tags: dict[str, str]) -> bool:
        """Tagged for a cluster of this name that another state store holds."""
        return (tags.get(TAG_CLUSTER) == self.cluster and self.owner is not None
                and tags.get(TAG_OWNER) != self.owner)

    def owned_filters(self, name: str | None = None) -> list[dict]:
        f = [{"Name": f"tag:{TAG_CLUSTER}", "Values": [self.cluster]}]
        if self.owner:
            f.append({"Name": f"tag:{TAG_OWNER}", "Values": [self.owner]})
        if name is not None:
            f.append({"Name": f"tag:{TAG_RESOURCE}", "Values": [name]})
        return f


def tag_dict(tags: list[dict] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


class Resource(abc.ABC):
    """One desired cloud object. Subclasses set ``kind`` and implement the hooks."""

    kind: ClassVar[str]
    mutable: ClassVar[frozenset[str]] = frozenset()
    # Kinds whose objects must be gone before objects of this kind can be deleted.
    delete_after: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, **spec: Any):
        self.name = name
        self.spec = spec

    def __repr__(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def shared(self) -> bool:
        """A shared object is used, never created or deleted (an existing VPC, a zone)."""
        return False

    @abc.abstractmethod
    def find(self, ctx: Context) -> Actual | None: ...

    @abc.abstractmethod
    def desired(self, ctx: Context) -> dict[str, Any]:
        """The fields compared with the actual object, references resolved."""

    @abc.abstractmethod
    def create(self, ctx: Context) -> Actual: ...

    def update(self, ctx: Context, actual: Actual, changes: dict[str, tuple[Any, Any]]) -> None:
        raise AwsError(f"{self.kind} {self.name} cannot be changed in place")

    def diff(self, ctx: Context, actual: Actual) -> dict[str, tuple[Any, Any]]:
        out = {}
        for key, want in self.desired(ctx).items():
            have = actual.fields.get(key)
            if isinstance(want, Pending) or _norm(have) != _norm(want):
                out[key] = (have, want)
        return out

    def check_changes(self, changes: dict[str, tuple[Any, Any]]) -> None:
        fixed = sorted(set(changes) - self.mutable)
        if fixed:
            raise AwsError(
                f"{self.kind} {self.name}: {', '.join(fixed)} cannot change in place; "
                "revert the spec, or delete and recreate the cluster"
            )

    # Kind-level hooks used by scans and deletes -------------------------------------
    @classmethod
    def scan(cls, ctx: Context) -> list[Found]:
        """Every object of this kind the cluster owns (or shares)."""
        return []

    @classmethod
    def delete(cls, ctx: Context, found: Found) -> None:
        raise AwsError(f"cannot delete {found.label()}")

    @classmethod
    def blockers(cls, ctx: Context, found: Found) -> str:
        """What keeps an object from being deleted, in words (e.g. the ENIs using it)."""
        return ""


def _norm(v: Any) -> Any:
    if isinstance(v, list | tuple | set):
        items = [_norm(x) for x in v]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


def first(items: list[dict]) -> dict | None:
    return items[0] if items else None
