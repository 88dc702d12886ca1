"""Transaction-scoped locks beyond row locks."""

from sqlalchemy import text
from sqlalchemy.orm import Session

# Any constant: one transaction-scoped lock that serialises activations on PostgreSQL.
_ACTIVATION_LOCK = 0x67726164


def serialise_activations(session: Session) -> None:
    """Until this transaction ends, no other one can record an activation (PostgreSQL).

    Activation ids come from a sequence: without this, a transaction holding id 7 could
    commit after one holding id 8, and a cache that saw MAX(id) = 8 would miss it. SQLite's
    writers are already serialised by BEGIN IMMEDIATE.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ACTIVATION_LOCK})
