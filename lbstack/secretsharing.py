"""Which hosts of a stack hold each secret, which one keeps it, and which must be sent it.

A secret lives only on the hosts whose components use it (:data:`NEEDED_BY`): the database
password on the db and app hosts, Redis' passwords on the cache host (and the app's on the app
hosts), the app key on the app hosts. Its *keeper* is the first host of the first group that
needs it (the db host for the database password): the keeper generates it on the first run
(``lbstack-secrets ensure``), and every other holder is sent the keeper's value, sealed to
that holder's own key (``lbstack-secrets seal``/``unseal``), whenever its digest differs from
the keeper's. On one VPS every group is the same host: nothing is sent.
"""

from __future__ import annotations

from lbstack.layout import SECRETS

NEEDED_BY: dict[str, tuple[str, ...]] = {
    "db_password": ("db", "app"),
    "redis_password": ("cache", "app"),
    "redis_admin_password": ("cache",),
    "app_key": ("app",),
}
assert set(NEEDED_BY) == set(SECRETS)


def holders(secret: str, groups: dict[str, list[str]]) -> list[str]:
    """The hosts that hold ``secret``, the keeper first (``groups``: group -> host names in
    inventory order)."""
    found: list[str] = []
    for group in NEEDED_BY[secret]:
        for name in groups.get(group, []):
            if name not in found:
                found.append(name)
    return found


def keeper(secret: str, groups: dict[str, list[str]]) -> str | None:
    """The host that generates and keeps ``secret`` (None: no host of the stack needs it)."""
    found = holders(secret, groups)
    return found[0] if found else None


def needs_sending(holder_digest: str | None, keeper_digest: str | None) -> bool:
    """Whether a holder must be sent the keeper's value: it has none, or another one, or the
    keeper has none yet (it generates it in this run, before the value is sent)."""
    return keeper_digest is None or holder_digest != keeper_digest
