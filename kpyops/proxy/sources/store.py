"""ObjectStore: the last known copy of each object of one kind, turning listings into events.

A watch delivers events one by one; a (re)list or a re-read directory delivers a whole
set, which :meth:`ObjectStore.replace` turns into the updates and deletes that happened,
as an informer's store does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kpyops.proxy.objects import ObjectKey, object_key


class ObjectStore:
    def __init__(
        self, on_update: Callable[[dict], None], on_delete: Callable[[dict], None]
    ) -> None:
        self.on_update = on_update
        self.on_delete = on_delete
        self.objects: dict[ObjectKey, dict] = {}

    def upsert(self, obj: dict) -> None:
        key = object_key(obj)
        if self.objects.get(key) != obj:
            self.objects[key] = obj
            self.on_update(obj)

    def delete(self, obj: dict) -> None:
        known = self.objects.pop(object_key(obj), None)
        if known is not None:
            self.on_delete(known)

    def replace(self, objects: Iterable[dict]) -> None:
        """The complete current set: emit deletes for vanished objects, updates for changed."""
        fresh = {object_key(o): o for o in objects}
        for key in list(self.objects.keys() - fresh.keys()):
            self.on_delete(self.objects.pop(key))
        for obj in fresh.values():
            self.upsert(obj)
