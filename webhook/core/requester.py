"""Who is asking: platform team or app team, decided from userInfo and configuration.

GitOps controllers often run with cluster-admin-like groups; when one applies a team's
manifests it must be judged as that team, so configured controllers are *not* platform in the
namespaces they act for.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from webhook.core.model import UserInfo
from webhook.core.settings import PlatformSettings

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class Requester:
    username: str
    groups: tuple[str, ...]
    platform: bool
    reason: str  # why platform or not, for the log
    service_account: tuple[str, str] | None = None  # (namespace, name)
    acting_for: str = ""  # the namespace glob a GitOps controller acts for

    def to_input(self) -> dict[str, Any]:
        sa = {"namespace": self.service_account[0], "name": self.service_account[1]} if self.service_account else None
        return {"username": self.username, "groups": list(self.groups), "platform": self.platform,
                "reason": self.reason, "service_account": sa, "acting_for": self.acting_for}


def classify(user: UserInfo, namespace: str, platform: PlatformSettings) -> Requester:
    sa = None
    if user.username.startswith(SERVICE_ACCOUNT_PREFIX):
        parts = user.username[len(SERVICE_ACCOUNT_PREFIX):].split(":", 1)
        if len(parts) == 2:
            sa = (parts[0], parts[1])
    for controller in platform.gitops_controllers:
        if controller.username == user.username:
            for pattern in controller.namespaces:
                if namespace and fnmatchcase(namespace, pattern):
                    return Requester(user.username, user.groups, False, f"GitOps controller acting for {pattern}",
                                     sa, acting_for=pattern)
    if user.username in platform.users:
        return Requester(user.username, user.groups, True, "platform user", sa)
    for group in user.groups:
        if group in platform.groups:
            return Requester(user.username, user.groups, True, f"platform group {group}", sa)
    return Requester(user.username, user.groups, False, "not in the platform users or groups", sa)
