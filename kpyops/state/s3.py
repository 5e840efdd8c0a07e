"""The S3 state store: s3://BUCKET/PREFIX/clusters/NAME/KEY.

The bucket is made private, versioned (every write is kept: a spec or key can be brought
back) and encrypted by default, the first time kpyops writes to it. Reads never write.
A lock object written with a conditional put (If-None-Match: *) keeps two runs apart.
Credentials come from boto3's standard chain, never from the URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import urllib.parse
from collections.abc import Iterator

from kpyops.clouds.aws.errors import AwsError
from kpyops.clouds.aws.session import AwsSession
from kpyops.spec.names import CLUSTER_NAME_MAX, check_cluster_name, is_valid
from kpyops.state.base import SPEC, ClusterNotFound, LockHeld, StateError, StateStore

LOCK_KEY = ".lock"
NOT_FOUND = ("NoSuchKey", "404", "NotFound")


def holder_id(said: str) -> str:
    """HOST/PID of a lock's text (its JSON), or the text itself when it is not ours."""
    try:
        data = json.loads(said)
        return f"{data['host']}/{data['pid']}"
    except (ValueError, KeyError, TypeError):
        return said


class S3Store(StateStore):
    def __init__(self, url: str, *, region: str | None = None, session: AwsSession | None = None):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise StateError(f"not an S3 store URL: {url!r} (use s3://bucket/prefix)")
        self.url = url
        self.bucket = parsed.netloc
        prefix = parsed.path.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        region = (region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                  or "us-east-1")
        self.session = session or AwsSession(region)
        self._bucket_ready = False

    # keys ---------------------------------------------------------------------------
    def _root(self, cluster: str) -> str:
        """The cluster's key prefix; every key of the store is built here, from a checked name."""
        return f"{self.prefix}clusters/{check_cluster_name(cluster)}/"

    def _key(self, cluster: str, key: str) -> str:
        parts = key.split("/")
        if key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise StateError(f"key {key!r} escapes the cluster folder")
        return self._root(cluster) + key

    def _call(self, op: str, **kw) -> dict:
        try:
            return self.session.call("s3", op, **kw)
        except AwsError as err:
            raise StateError(f"state store {self.url}: {err}") from None

    # bucket -------------------------------------------------------------------------
    def ensure_bucket(self) -> None:
        """Create the bucket if missing; make sure it is versioned, private and encrypted."""
        if self._bucket_ready:
            return
        try:
            self.session.call("s3", "head_bucket", Bucket=self.bucket)
        except AwsError as err:
            if err.code not in NOT_FOUND and err.code != "NoSuchBucket":
                raise StateError(f"state store {self.url}: {err}") from None
            kw = {}
            if self.session.region != "us-east-1":
                kw["CreateBucketConfiguration"] = {"LocationConstraint": self.session.region}
            self._call("create_bucket", Bucket=self.bucket, **kw)
        if self._call("get_bucket_versioning", Bucket=self.bucket).get("Status") != "Enabled":
            self._call("put_bucket_versioning", Bucket=self.bucket,
                       VersioningConfiguration={"Status": "Enabled"})
        self._call("put_public_access_block", Bucket=self.bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True,
            "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
        self._call("put_bucket_encryption", Bucket=self.bucket, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                       "BucketKeyEnabled": True}]})
        self._bucket_ready = True

    # StateStore ---------------------------------------------------------------------
    def _keys(self, prefix: str) -> list[str]:
        try:
            return [o["Key"] for o in self.session.pages("s3", "list_objects_v2", "Contents",
                                                           Bucket=self.bucket, Prefix=prefix)]
        except AwsError as err:
            if err.code == "NoSuchBucket":
                return []
            raise StateError(f"state store {self.url}: {err}") from None

    def clusters(self) -> list[str]:
        base = f"{self.prefix}clusters/"
        names = set()
        for key in self._keys(base):
            name, _, rest = key[len(base):].partition("/")
            if rest == SPEC and is_valid(name, CLUSTER_NAME_MAX):
                names.add(name)
        return sorted(names)

    def exists(self, cluster: str, key: str = SPEC) -> bool:
        try:
            self.session.call("s3", "head_object", Bucket=self.bucket, Key=self._key(cluster, key))
            return True
        except AwsError as err:
            if err.code in NOT_FOUND or err.code == "NoSuchBucket":
                return bool(self._keys(self._key(cluster, key) + "/"))  # a "folder"
            raise StateError(f"state store {self.url}: {err}") from None

    def read(self, cluster: str, key: str) -> bytes:
        try:
            obj = self.session.call("s3", "get_object", Bucket=self.bucket, Key=self._key(cluster, key))
            return obj["Body"].read()
        except AwsError as err:
            if err.code in (*NOT_FOUND, "NoSuchBucket"):
                if not self._keys(self._root(cluster)):
                    raise ClusterNotFound(f"cluster {cluster!r} not found in {self.url}") from None
                raise StateError(f"{key} not found for cluster {cluster!r}") from None
            raise StateError(f"state store {self.url}: {err}") from None

    def write(self, cluster: str, key: str, data: bytes, *, secret: bool = False) -> None:
        full = self._key(cluster, key)  # a bad name or key is refused before any call
        self.ensure_bucket()
        self._call("put_object", Bucket=self.bucket, Key=full, Body=data,
                   ServerSideEncryption="AES256")

    def delete(self, cluster: str, key: str) -> None:
        full = self._key(cluster, key)
        for k in [full, *self._keys(full + "/")]:
            self._call("delete_object", Bucket=self.bucket, Key=k)

    def list(self, cluster: str, prefix: str = "") -> list[str]:
        root = self._root(cluster)
        return sorted(
            k[len(root):] for k in self._keys(root + prefix)
            if k[len(root):] != LOCK_KEY
        )

    def delete_cluster(self, cluster: str) -> None:
        """Delete the cluster's objects (earlier versions stay in the versioned bucket)."""
        for k in self._keys(self._root(cluster)):
            self._call("delete_object", Bucket=self.bucket, Key=k)

    @contextlib.contextmanager
    def lock(self, cluster: str, *, purpose: str) -> Iterator[None]:
        key = self._root(cluster) + LOCK_KEY
        self.ensure_bucket()
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
                  "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            self.session.call("s3", "put_object", Bucket=self.bucket, Key=key, IfNoneMatch="*",
                              Body=json.dumps(holder).encode(), ServerSideEncryption="AES256")
        except AwsError as err:
            if err.code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                said = self._holder(key)
                raise LockHeld(f"cluster {cluster!r} is locked by {said}; if that run is gone: "
                               f"kpyops state unlock {cluster} --holder {holder_id(said)}") from None
            raise StateError(f"state store {self.url}: {err}") from None
        try:
            yield
        finally:
            self._call("delete_object", Bucket=self.bucket, Key=key)

    def break_lock(self, cluster: str, holder: str) -> str:
        key = self._root(cluster) + LOCK_KEY
        said = self._holder(key)
        if said == "another run":
            raise StateError(f"cluster {cluster!r} is not locked in {self.url}")
        if holder_id(said) != holder:
            raise StateError(f"cluster {cluster!r} is locked by {said}, not by {holder}: "
                             "nothing removed")
        self._call("delete_object", Bucket=self.bucket, Key=key)
        return said

    def _holder(self, key: str) -> str:
        try:
            return self.session.call("s3", "get_object", Bucket=self.bucket, Key=key)["Body"].read().decode()
        except AwsError:
            return "another run"
