"""The verdict cache: a bounded, thread-safe LRU of decisions, one per worker process (per pipeline).

The API server calls /mutate and then /validate for the same object (and /mutate again on reinvocation),
GitOps controllers re-apply unchanged objects every few minutes, and a sync storm after an outage re-applies
thousands at once. Evaluating each again gives the same answer: `Pipeline.review` is a pure function of the
request, the date, the cluster view, the configuration and the policies (webhook/pipeline.py). The cache
keys a decision on a digest of all of them (`request_key`) and never outlives a policy revision.

Not cached (decided in `Pipeline._review`): skipped requests and objects over a size limit (the cache is
asked first, since a hit is content that passed the limits, but an over-limit denial is never stored; the
key's work is one serialization of a body whose size the server already bounds), engine failures and
timeouts (a fact about that moment, not about the object), decisions taken while the cluster view is enabled
but cannot be trusted or has a watch down (its `age_seconds` and notices change with time), and reviews
given an explicit cluster snapshot (samples, tests: a snapshot built from files has no generation to key on).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

import orjson

from webhook.core.model import AdmissionRequest, Decision

HIT, MISS, EVICT = "hit", "miss", "evict"  # netguard_verdict_cache_total{result}
DIGEST_SIZE = 20  # bytes of blake2b: 160 bits, far beyond any collision over a cache's lifetime
# Bookkeeping the API server writes into every object. normalize reads only name, namespace, labels and
# annotations of metadata, so unless a rule reads the raw object (PolicySet.reads_raw_object: then the whole
# object is keyed) these are left out: an unchanged object re-applied keys the same whatever the server stamped
# on it, and managedFields, the largest part of an object applied server-side, is not serialized.
VOLATILE_METADATA = frozenset({"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp",
                               "selfLink"})

Observer = Callable[[str], None]


def _canonical(value: Any) -> bytes:
    """Canonical JSON (sorted keys, no spaces); TypeError when the value cannot be (e.g. mixed key types).

    orjson first (about 6x faster on a large policy); the standard library for what orjson refuses (integers
    past 64 bits, non-string keys). Either is deterministic, and a key never leaves the process."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
                          allow_nan=True).encode("utf-8", "surrogatepass")


def _without_bookkeeping(obj: Mapping[str, Any] | None, whole: bool) -> Any:
    if obj is None or whole:
        return obj
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or not VOLATILE_METADATA.intersection(meta):
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k not in VOLATILE_METADATA}}


def settings_digest(settings: Any) -> bytes:
    """The whole configuration (a frozen dataclass tree) as one digest."""
    try:
        text = _canonical(dataclasses.asdict(settings))
    except TypeError:  # a value json cannot sort or write: its repr is still deterministic within the process
        text = repr(settings).encode()
    return hashlib.blake2b(text, digest_size=DIGEST_SIZE).digest()


def request_key(request: AdmissionRequest, *, today: date, revision: str, config: bytes, cluster: Any,
                engine: str, raw_object: bool = True) -> bytes | None:
    """The digest of everything the decision depends on, or None when it cannot be computed (not cached).

    `cluster` identifies the cluster view's state: None for no view, else the snapshot's generation.
    `raw_object`: a rule reads the raw object (then it is keyed whole). Left out on purpose: the request uid
    (per call), and VOLATILE_METADATA when no rule reads the raw object.
    """
    user = request.user
    doc = [
        revision, config.hex(), engine, today.isoformat(), cluster,
        request.kind.group, request.kind.version, request.kind.kind, request.operation.value,
        request.name, request.namespace, request.sub_resource, request.dry_run,
        # the whole userInfo: requester.classify reads username and groups, a guardrail may read more
        user.username, user.uid, list(user.groups), {k: list(v) for k, v in user.extra.items()},
        _without_bookkeeping(request.object, raw_object),
        _without_bookkeeping(request.old_object, raw_object),  # the old object on UPDATE, the subject on DELETE
    ]
    try:
        text = _canonical(doc)
    except (TypeError, ValueError):
        return None
    return hashlib.blake2b(text, digest_size=DIGEST_SIZE).digest()


class VerdictCache:
    """A bounded LRU of Decisions by key, safe across threads. Emptied whenever the policy revision or the
    engine it is asked for changes, so a verdict is never reused across revisions (the revision is in the key
    as well)."""

    def __init__(self, max_entries: int, observer: Observer | None = None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.observer = observer  # called with HIT, MISS or EVICT (the server's metrics)
        self._entries: OrderedDict[bytes, Decision] = OrderedDict()
        self._lock = threading.Lock()
        self._scope: tuple[str, object] | None = None  # (revision, engine) the entries belong to
        self._settings: tuple[object, bytes] | None = None  # the settings object last digested, and its digest
        self.hits = self.misses = self.evictions = 0

    def sibling(self) -> VerdictCache:
        """An empty cache of the same size reporting to the same observer (the /v1/check listener's own)."""
        return VerdictCache(self.max_entries, self.observer)

    def config_digest(self, settings: object) -> bytes:
        """settings_digest, computed once per settings object (held, so its identity cannot be reused)."""
        memo = self._settings
        if memo is not None and memo[0] is settings:
            return memo[1]
        digest = settings_digest(settings)
        self._settings = (settings, digest)
        return digest

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get(self, key: bytes, revision: str, engine: object) -> Decision | None:
        with self._lock:
            self._rescope(revision, engine)
            decision = self._entries.get(key)
            if decision is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
        self._tell(HIT if decision is not None else MISS)
        return decision

    def put(self, key: bytes, decision: Decision, revision: str, engine: object) -> None:
        evicted = 0
        with self._lock:
            self._rescope(revision, engine)
            self._entries[key] = decision
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                evicted += 1
            self.evictions += evicted
        for _ in range(evicted):
            self._tell(EVICT)

    def _rescope(self, revision: str, engine: object) -> None:
        scope = self._scope
        if scope is None or scope[0] != revision or scope[1] is not engine:
            self._entries.clear()
            self._scope = (revision, engine)

    def _tell(self, result: str) -> None:
        observer = self.observer
        if observer is not None:
            observer(result)
