"""A user's verification secret: shown once, through support, audited.

The secret opens the user's own sealed records in every published bundle
(core.liabilities.bundle), so the user downloads the same public file as everyone and the
exchange never learns who checks. It is derived, not stored (core.liabilities.keys):
`liabilities_user_secrets` holds only which generation each user is on and who showed it
when — never the secret.

- `reveal_user_secret` shows generation 1 once per user (support or admin, with a reason);
  a second call is refused (SecretAlreadyRevealedError names when and by whom), because a
  secret shown twice has been seen by one more person than the user.
- `reissue_user_secret` (admin) moves the user to a new generation when the old secret was
  lost or exposed, and shows the new one once. Snapshots taken from then on seal the
  user's records to it; earlier bundles still open with the old one.
Both are audited (`liabilities.secret_revealed`, `liabilities.secret_reissued`) with the
user, the generation and the reason — never the secret.
"""

from __future__ import annotations

from core.base.errors import ReasonRequiredError, SecretAlreadyRevealedError, StoreError
from core.ledger import DuplicateKeyStoreError, Store, check_owner_id
from core.liabilities.keys import GENERATION_MAX, keys_for, secret_text
from core.base.permissions import Permission, Principal, require
from core.platform import Platform
from core.platform.boundary import boundary

SECRETS_COLLECTION = "liabilities_user_secrets"
REISSUE_ATTEMPTS_MAX = 5


@boundary
def reveal_user_secret(platform: Platform, principal: Principal, user_id: str, reason: str) -> str:
    """The user's verification secret (dash-separated hex), shown this once and audited.

    Raises: PermissionDeniedError, InvalidAccountError (malformed id), ReasonRequiredError,
        ConfigurationError (no keys on a real database), SecretAlreadyRevealedError.
    """
    require(principal, Permission.READ_USERS)
    check_owner_id(user_id)
    reason = _reason(reason)
    keys = keys_for(platform.store)
    record = {"_id": user_id, "generation": 1, "revealed_at": platform.clock.now(), "revealed_by": principal.name}
    try:
        platform.store.collection(SECRETS_COLLECTION).insert_one(record)
    except DuplicateKeyStoreError:
        existing = platform.store.collection(SECRETS_COLLECTION).find_one({"_id": user_id}) or {}
        raise SecretAlreadyRevealedError(
            f"the verification secret of {user_id} was already shown (by {existing.get('revealed_by')} at "
            f"{existing.get('revealed_at')}); an admin can re-issue a new one", user_id=user_id,
            revealed_by=existing.get("revealed_by"), generation=existing.get("generation")) from None
    platform.ledger.audit.append(type="liabilities.secret_revealed", actor=principal.name, role=principal.role.value,
                                 target=user_id, user=user_id, after={"generation": 1}, data={"reason": reason})
    return secret_text(keys.user_secret(user_id, 1))


@boundary
def reissue_user_secret(platform: Platform, principal: Principal, user_id: str, reason: str) -> str:
    """A new verification secret for the user (the old one stops opening new bundles), shown once, audited.

    Raises: PermissionDeniedError (admins only), InvalidAccountError, ReasonRequiredError,
        ConfigurationError, StoreError (kept contended).
    """
    require(principal, Permission.MANAGE_LIABILITIES)
    check_owner_id(user_id)
    reason = _reason(reason)
    keys = keys_for(platform.store)
    secrets = platform.store.collection(SECRETS_COLLECTION)
    now = platform.clock.now()
    for _ in range(REISSUE_ATTEMPTS_MAX):
        current = secrets.find_one({"_id": user_id})
        if current is None:  # never shown: the first secret is generation 1, so the new one is 2
            try:
                secrets.insert_one({"_id": user_id, "generation": 2, "revealed_at": now, "revealed_by": principal.name})
            except DuplicateKeyStoreError:
                continue
            generation = 2
        else:
            generation = current["generation"] + 1
            if generation >= GENERATION_MAX:
                raise StoreError(f"{user_id} has had too many secrets", user_id=user_id)
            updated = secrets.find_one_and_update({"_id": user_id, "generation": current["generation"]},
                                                  {"$set": {"generation": generation, "revealed_at": now,
                                                            "revealed_by": principal.name}})
            if updated is None:
                continue
        platform.ledger.audit.append(type="liabilities.secret_reissued", actor=principal.name, role=principal.role.value,
                                     target=user_id, user=user_id, before={"generation": generation - 1},
                                     after={"generation": generation}, data={"reason": reason})
        return secret_text(keys.user_secret(user_id, generation))
    raise StoreError(f"the secret of {user_id} kept changing under a concurrent re-issue", user_id=user_id)


def reissued_generations(store: Store) -> dict[str, int]:
    """Users on a generation above 1 (re-issued secrets: few), for sealing a snapshot's records."""
    return {d["_id"]: d["generation"] for d in store.collection(SECRETS_COLLECTION).find({"generation": {"$gt": 1}})}


def _reason(reason: str) -> str:
    if not reason.strip():
        raise ReasonRequiredError("say why the user needs the secret (e.g. the support ticket)")
    return reason.strip()
