"""The webhook's picture of the cluster: namespace labels, every network policy, Cilium's CIDR groups and
Calico's network sets, kept current by watches.

Some guardrails need more than the object under review: namespace-label modes need the namespace's
labels, namespace-has-default-deny needs the other policies of the namespace. An admission webhook
must not call the API server on the request path (a slow API server would make every policy write
slow, and the API server is calling us), so a background `Watcher` lists and then watches
namespaces, the policy kinds, CiliumCIDRGroups (what `cidrGroupRef`/`cidrGroupSelector` entries
of toCIDRSet/fromCIDRSet stand for) and Calico (Global)NetworkSets (what a Calico rule's selector may also pick)
into a `ClusterView`, and requests read an immutable
`ClusterSnapshot` from memory.

`ClusterView` is pure state with a lock: the watcher thread applies lists and events, request
threads take snapshots (copy-on-write: a snapshot is never mutated, so it needs no lock once taken).
It knows whether it is `synced` (every resource listed once) and `stale` (a watch has been down for
longer than `stale_after_seconds`); the clock is injected so both are testable without waiting.
A stale view is reported, never trusted: rules that need it say "unknown" instead of guessing.

`Watcher` is the I/O edge (webhook/cluster/kube.py does the HTTP): one daemon thread per resource, list ->
watch from the list's resourceVersion -> on 410 Gone list again -> on errors exponential backoff
with jitter, then list again (events missed while down are covered by the new list). It runs in each
gunicorn worker (the app factory starts it after the fork): threads do not survive a fork.

Size: about 500 lines: the thread-safe view and the watcher that feeds it, whose list/watch/410/backoff
cycle and synced/stale state are tested together.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from webhook import kinds, logs
from webhook.core.model import GroupVersionKind, PolicyKey
from webhook.core.netpolicy import NormalizedPolicy
from webhook.core.normalize import normalize
from webhook.core.selectors import NAMESPACE_NAME_LABEL
from webhook.core.shape import ShapeError
from webhook.core.snapshot import (
    CIDR_GROUP_KIND,
    CidrGroup,
    ClusterSnapshot,
    NetworkSet,
    cidr_group,
    network_set,
    object_meta,
)

if TYPE_CHECKING:
    from webhook.core.settings import ClusterSettings

log = logs.get_logger("netguard.cluster")

NAMESPACES = "namespaces"
# Watched policy resources -> the kind their objects have: every registered kind (webhook/kinds), keyed on the
# resource qualified by its group (`PolicyKind.resource`, "networkpolicies.networking.k8s.io"), as networkpolicies
# are served by more than one group (projectcalico.org's too).
POLICY_RESOURCES: Mapping[str, GroupVersionKind] = {k.resource: k.gvk for k in kinds.ALL}
# CiliumCIDRGroup (cilium.io, cluster-scoped, plural ciliumcidrgroups): a named list of external CIDRs that
# CiliumNetworkPolicy toCIDRSet/fromCIDRSet entries reference by name (`cidrGroupRef`) or by the group's
# labels (`cidrGroupSelector`, a LabelSelector) instead of a literal `cidr`. Its only field is
# spec.externalCIDRs, a list of CIDR strings (CRD: required, minItems 0, items `format: cidr`). Served as
# cilium.io/v2alpha1 since Cilium 1.14, and as cilium.io/v2 since Cilium 1.18 (v2 the storage version,
# v2alpha1 still served but deprecated): github.com/cilium/cilium pkg/k8s/apis/cilium.io/v2alpha1/
# cidrgroups_types.go, pkg/k8s/apis/cilium.io/v2/cidrgroups_types.go, pkg/k8s/apis/cilium.io/client/crds/v2/
# ciliumcidrgroups.yaml, pull request #38940 ("k8s: Promote CCG to v2 and deprecate v2alpha1"). The selector
# field is pkg/policy/api/cidr.go CIDRRule.CIDRGroupSelector. webhook/cluster/kube.py lists v2 and falls back to
# v2alpha1 on clusters that serve only that.
CIDR_GROUPS = "ciliumcidrgroups"
# Calico's NetworkSet (namespaced) and GlobalNetworkSet (cluster-scoped), projectcalico.org/v3: `spec.nets`, the
# addresses a Calico rule's selector adds when it matches the set's labels (github.com/projectcalico/api
# pkg/apis/projectcalico/v3/networkset.go, globalnetworkset.go). Watched, when served, as the kind they are.
NETWORK_SETS = {"networksets.projectcalico.org": "NetworkSet",
                "globalnetworksets.projectcalico.org": "GlobalNetworkSet"}
RESOURCES = (NAMESPACES, *POLICY_RESOURCES, CIDR_GROUPS, *NETWORK_SETS)
OPTIONAL_RESOURCES = frozenset({*(k.resource for k in kinds.ALL if k.optional_crd), CIDR_GROUPS,
                                *NETWORK_SETS})  # CRDs (Calico's API server)


def _kind(resource: str) -> kinds.PolicyKind:
    kind = kinds.by_resource(resource)
    assert kind is not None  # POLICY_RESOURCES holds the registry's resources
    return kind


def _namespace_labels(obj: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    _, name, labels = object_meta(obj)
    return name, {NAMESPACE_NAME_LABEL: name, **labels}  # the API server sets it; a recording may not


# Generations of every ClusterView in the process, so two views (a test's, a replaced one) never share one.
_GENERATIONS = itertools.count(1)


@dataclass(frozen=True)
class _Data:
    """The part of the view that events change; replaced whole (copy-on-write), never mutated."""

    namespaces: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    by_namespace: Mapping[str, Mapping[PolicyKey, NormalizedPolicy]] = field(default_factory=dict)
    cidr_groups: Mapping[str, CidrGroup] = field(default_factory=dict)
    network_sets: Mapping[tuple[str, str], NetworkSet] = field(default_factory=dict)  # (namespace, name)


class ClusterView:
    """Thread-safe holder of the watched state; the watcher writes, request threads take snapshots.

    `clock` (monotonic seconds) decides staleness; `wall` only stamps `last_event` for humans.
    """

    def __init__(self, stale_after_seconds: float = 60.0, *, resources: Iterable[str] = RESOURCES,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.stale_after_seconds = float(stale_after_seconds)
        self._resources = tuple(resources)
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._data = _Data()
        self._generation = next(_GENERATIONS)
        self._listed: set[str] = set()
        self._last_ok: dict[str, float] = {}  # resource -> when its watch was last known to be current
        self._down: dict[str, str] = {}  # resource -> the error that took its watch down
        self._last_event: datetime | None = None
        # Stored objects normalize() (or cidr_group(), network_set()) rejected, with the reason; CIDR groups as
        # ("CiliumCIDRGroup", "", name), network sets as ("NetworkSet", namespace, name) and
        # ("GlobalNetworkSet", "", name).
        self.unreadable: dict[PolicyKey, str] = {}

    # -- reads (any thread) ------------------------------------------------------------------

    @property
    def resources(self) -> tuple[str, ...]:
        """What must be listed before the view is synced (and what the Watcher watches)."""
        return self._resources

    def snapshot(self) -> ClusterSnapshot:
        with self._lock:
            data, synced, age, generation = self._data, self._synced(), self._age(), self._generation
        return ClusterSnapshot(enabled=True, synced=synced, stale=synced and age > self.stale_after_seconds,
                               age_seconds=age if synced else None, namespaces=data.namespaces,
                               by_namespace=data.by_namespace, cidr_groups_by_name=data.cidr_groups,
                               network_sets_by_key=data.network_sets,
                               network_sets_known=all(r in self._resources for r in NETWORK_SETS),
                               generation=generation)

    @property
    def namespaces(self) -> Mapping[str, Mapping[str, str]]:
        with self._lock:
            return self._data.namespaces

    @property
    def policies(self) -> dict[PolicyKey, NormalizedPolicy]:
        return self.snapshot().policies

    @property
    def synced(self) -> bool:
        with self._lock:
            return self._synced()

    @property
    def stale(self) -> bool:
        return self.snapshot().stale

    @property
    def last_event(self) -> datetime | None:
        with self._lock:
            return self._last_event

    def status(self) -> dict[str, Any]:
        """For /readyz and logs."""
        snap = self.snapshot()
        with self._lock:
            down = dict(self._down)
            last = self._last_event
        return {"synced": snap.synced, "stale": snap.stale, "age_seconds": snap.age_seconds,
                "namespaces": len(snap.namespaces), "policies": len(snap.policies),
                "cidr_groups": len(snap.cidr_groups_by_name), "network_sets": len(snap.network_sets_by_key),
                "last_event": last.isoformat() if last else None,
                "watches_down": {r: error[:300] for r, error in sorted(down.items())}}

    @property
    def generation(self) -> int:
        """Changes with every list or event applied (never with liveness alone)."""
        with self._lock:
            return self._generation

    def _synced(self) -> bool:
        return all(r in self._listed for r in self._resources)

    def _age(self) -> float:
        """0 while every watch is up; else how long ago the longest-down watch was last current."""
        now = self._clock()
        return max((now - self._last_ok.get(r, now) for r in self._down), default=0.0)

    # -- writes (the watcher) --------------------------------------------------------------------

    def replace(self, resource: str, objects: Iterable[Mapping[str, Any]]) -> None:
        """A complete list of one resource: its previous content is dropped (deletes missed while down)."""
        if resource == NAMESPACES:
            namespaces = dict(_namespace_labels(obj) for obj in objects)
            with self._lock:
                self._store(namespaces=namespaces)
                self._listed_now(resource)
            return
        if resource == CIDR_GROUPS:
            read = [self._cidr_group(obj) for obj in objects]
            with self._lock:
                self.unreadable = {k: v for k, v in self.unreadable.items() if k[0] != CIDR_GROUP_KIND}
                groups: dict[str, CidrGroup] = {}
                for key, group, problem in read:
                    if group is not None:
                        groups[group.name] = group
                    elif problem:
                        self.unreadable[key] = problem
                self._store(cidr_groups=groups)
                self._listed_now(resource)
            return
        if resource in NETWORK_SETS:
            kind = NETWORK_SETS[resource]
            sets = [self._network_set(kind, obj) for obj in objects]
            with self._lock:
                self.unreadable = {k: v for k, v in self.unreadable.items() if k[0] != kind}
                kept = {key: found for key, found in self._data.network_sets.items()
                        if bool(key[0]) != (kind == "NetworkSet")}  # the other kind's sets
                for key, found, problem in sets:
                    if found is not None:
                        kept[(found.namespace, found.name)] = found
                    elif problem:
                        self.unreadable[key] = problem
                self._store(network_sets=kept)
                self._listed_now(resource)
            return
        kind = _kind(resource).name  # the first part of the keys of its policies (snapshot.policy_key)
        fresh = [self._normalize(resource, obj) for obj in objects]
        with self._lock:
            by_ns: dict[str, dict[PolicyKey, NormalizedPolicy]] = {
                ns: {k: p for k, p in inner.items() if k[0] != kind} for ns, inner in self._data.by_namespace.items()}
            self.unreadable = {k: v for k, v in self.unreadable.items() if k[0] != kind}
            for key, policy, problem in fresh:
                if policy is not None:
                    by_ns.setdefault(key[1], {})[key] = policy
                elif problem:
                    self.unreadable[key] = problem
            self._store(by_namespace={ns: inner for ns, inner in by_ns.items() if inner})
            self._listed_now(resource)

    def apply(self, resource: str, event_type: str, obj: Mapping[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED or DELETED); BOOKMARK and unknown types only prove liveness."""
        if event_type not in ("ADDED", "MODIFIED", "DELETED"):
            self.mark_live(resource)
            return
        deleted = event_type == "DELETED"
        if resource == NAMESPACES:
            name, labels = _namespace_labels(obj)
            with self._lock:
                namespaces = dict(self._data.namespaces)
                if deleted:
                    namespaces.pop(name, None)
                else:
                    namespaces[name] = labels
                self._store(namespaces=namespaces)
                self._event_now(resource)
            return
        if resource == CIDR_GROUPS:
            key, group, problem = self._cidr_group(obj)
            with self._lock:
                groups = dict(self._data.cidr_groups)
                groups.pop(key[2], None)
                self.unreadable.pop(key, None)
                if not deleted and group is not None:
                    groups[group.name] = group
                elif not deleted and problem:
                    self.unreadable[key] = problem
                self._store(cidr_groups=groups)
                self._event_now(resource)
            return
        if resource in NETWORK_SETS:
            key, found, problem = self._network_set(NETWORK_SETS[resource], obj)
            with self._lock:
                sets = dict(self._data.network_sets)
                sets.pop((key[1], key[2]), None)
                self.unreadable.pop(key, None)
                if not deleted and found is not None:
                    sets[(found.namespace, found.name)] = found
                elif not deleted and problem:
                    self.unreadable[key] = problem
                self._store(network_sets=sets)
                self._event_now(resource)
            return
        key, policy, problem = self._normalize(resource, obj)
        with self._lock:
            by_ns = dict(self._data.by_namespace)
            inner = dict(by_ns.get(key[1], {}))
            inner.pop(key, None)
            self.unreadable.pop(key, None)
            if not deleted and policy is not None:
                inner[key] = policy
            elif not deleted and problem:
                self.unreadable[key] = problem
            if inner:
                by_ns[key[1]] = inner
            else:
                by_ns.pop(key[1], None)
            self._store(by_namespace=by_ns)
            self._event_now(resource)

    def mark_live(self, resource: str) -> None:
        """The watch of `resource` is connected and current (a bookmark, a window that ended cleanly)."""
        with self._lock:
            self._event_now(resource, stamp=False)

    def mark_not_served(self, resource: str) -> None:
        """An optional resource whose CRD is not installed: listed, and empty."""
        self.replace(resource, ())

    def is_down(self, resource: str) -> bool:
        with self._lock:
            return resource in self._down

    def mark_down(self, resource: str, error: str) -> bool:
        """The watch of `resource` failed; True when it was up until now (log the transition once)."""
        with self._lock:
            was_up = resource not in self._down
            self._down[resource] = error
            return was_up

    def _store(self, **changes: Any) -> None:
        """Replace the data (the lock held) and take a new generation."""
        self._data = replace(self._data, **changes)
        self._generation = next(_GENERATIONS)

    def _listed_now(self, resource: str) -> None:
        self._listed.add(resource)
        self._event_now(resource)

    def _event_now(self, resource: str, stamp: bool = True) -> None:
        self._last_ok[resource] = self._clock()
        self._down.pop(resource, None)
        if stamp:
            self._last_event = self._wall()

    @staticmethod
    def _cidr_group(obj: Mapping[str, Any]) -> tuple[PolicyKey, CidrGroup | None, str]:
        _, name, _ = object_meta(obj)
        key = (CIDR_GROUP_KIND, "", name)
        try:
            return key, cidr_group(obj), ""
        except ShapeError as exc:
            return key, None, str(exc)

    @staticmethod
    def _network_set(kind: str, obj: Mapping[str, Any]) -> tuple[PolicyKey, NetworkSet | None, str]:
        namespace, name, _ = object_meta(obj)
        key = (kind, namespace if kind == "NetworkSet" else "", name)
        try:
            return key, network_set({**obj, "kind": kind}), ""
        except ShapeError as exc:
            return key, None, str(exc)

    @staticmethod
    def _normalize(resource: str, obj: Mapping[str, Any]) -> tuple[PolicyKey, NormalizedPolicy | None, str]:
        gvk = POLICY_RESOURCES[resource]
        namespace, name, _ = object_meta(obj)
        kind = _kind(resource)
        key = (kind.name, namespace if kind.namespaced else "", name)
        try:
            policy = normalize({**obj, "apiVersion": gvk.api_version, "kind": gvk.kind})
        except ShapeError as exc:
            return key, None, str(exc)
        return key, policy, ""


# -- the I/O edge ----------------------------------------------------------------------------------

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
MIN_WINDOW_SECONDS = 1.0


def backoff_seconds(failures: int, cap: float, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": half the delay fixed, half random, so workers
    that lost the API server together do not come back in lockstep."""
    delay = min(cap, BACKOFF_BASE_SECONDS * 2.0 ** max(0, failures - 1))
    return delay / 2 + rng.uniform(0, delay / 2)


class Watcher:
    """Keeps a ClusterView current from the API server: one daemon thread per watched resource."""

    def __init__(self, view: ClusterView, settings: ClusterSettings, *, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.view = view
        self.settings = settings
        self._rng = rng or random.Random()
        self._clock = clock
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._readers: dict[str, Any] = {}
        self._failures: dict[str, int] = {}  # consecutive failures per resource (each thread its own key)
        self._absent: set[str] = set()  # optional resources last found not installed (logged once until they are)
        self._lock = threading.Lock()
        # A watch request lasts at most this long: the server ends it cleanly, and a connection that died
        # silently (no RST) is noticed within window + grace instead of never.
        self.window_seconds = max(1, int(min(settings.resync_seconds, settings.stale_after_seconds)))
        # At least two attempts before the view can go stale.
        self.backoff_cap = max(1.0, min(BACKOFF_MAX_SECONDS, settings.stale_after_seconds / 2))

    def start(self) -> None:
        for resource in self.view.resources:
            thread = threading.Thread(target=self._run, args=(resource,), name=f"netguard-watch-{resource}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()
        log.info("cluster.watch.started", resources=list(self.view.resources), window_seconds=self.window_seconds,
                 resync_seconds=self.settings.resync_seconds, stale_after_seconds=self.settings.stale_after_seconds)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every thread: open watch connections are shut so blocked reads return at once."""
        self._stop.set()
        with self._lock:
            readers = list(self._readers.values())
        for reader in readers:
            reader.interrupt()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _open(self, resource: str) -> Any:
        from webhook.cluster import kube

        reader = kube.open_reader(self.settings.kubeconfig or None, in_cluster=self.settings.in_cluster)
        with self._lock:
            self._readers[resource] = reader
        return reader

    def _run(self, resource: str) -> None:
        from webhook.cluster.api import ClusterError
        from webhook.cluster.kube import WatchBrokeOff, WatchExpired

        reader: Any = None
        try:
            while not self._stop.is_set():
                try:
                    reader = reader or self._open(resource)
                    if resource in OPTIONAL_RESOURCES and not reader.served(resource):
                        if resource not in self._absent:  # one line, not one per resync: a CRD is not an error
                            self._absent.add(resource)
                            log.info("cluster.watch.not_installed", resource=resource,
                                     detail="CRD not installed: read as empty, looked for again at every resync")
                        self.view.mark_not_served(resource)
                        self._failures[resource] = 0
                        self._stop.wait(self.settings.resync_seconds)  # look again later: CRDs may be installed
                        continue
                    self._absent.discard(resource)
                    self._list_and_watch(reader, resource)
                except WatchExpired as exc:
                    log.info("cluster.watch.expired", resource=resource, error=str(exc)[:200])  # list again now
                except Exception as exc:  # ClusterError, or a bug: neither may end the thread and freeze the view
                    if self._stop.is_set():
                        break
                    if isinstance(exc, WatchBrokeOff) and not exc.timed_out:
                        self.view.mark_live(resource)  # current until the moment it broke: stale counts from here
                    error = str(exc) if isinstance(exc, ClusterError) else f"{type(exc).__name__}: {exc}"
                    self._failed(resource, error)
        finally:
            if reader is not None:
                reader.close()

    def _list_and_watch(self, reader: Any, resource: str) -> None:
        """List (the view's content for `resource` is replaced), then watch window after window from the last
        resourceVersion seen, until resync_seconds call for a fresh list."""
        was_down = self.view.is_down(resource)
        items, version = reader.list(resource)
        self.view.replace(resource, items)
        self._failures[resource] = 0  # the backoff starts over after every successful list
        if was_down:
            log.info("cluster.watch.recovered", resource=resource, objects=len(items))
        listed_at = self._clock()
        while not self._stop.is_set() and self._clock() - listed_at < self.settings.resync_seconds:
            opened = self._clock()
            for event_type, obj in reader.watch(resource, version, self.window_seconds):
                self.view.apply(resource, event_type, obj)
                version = _resource_version(obj) or version
                if self._stop.is_set():
                    return
            self.view.mark_live(resource)  # the window ended cleanly: still current
            if self._clock() - opened < MIN_WINDOW_SECONDS:  # a server (or proxy) ending watches at once
                self._stop.wait(MIN_WINDOW_SECONDS)

    def _failed(self, resource: str, error: str) -> None:
        failures = self._failures[resource] = self._failures.get(resource, 0) + 1
        if self.view.mark_down(resource, error):
            log.warning("cluster.watch.down", resource=resource, error=error[:300])
        delay = backoff_seconds(failures, self.backoff_cap, self._rng)
        log.debug("cluster.watch.retry", resource=resource, failures=failures, delay_seconds=round(delay, 2))
        self._stop.wait(delay)


def _resource_version(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("resourceVersion") or "") if isinstance(meta, Mapping) else ""
