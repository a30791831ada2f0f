"""Publishing, listing and rolling back rule-set versions (stored in the ticket database)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from dispatch_rules.bundle import DEFAULT_TABLES_DIR, RuleBundle, load_bundle
from dispatch_rules.compiler import CompiledRules, compile_rules
from dispatch_rules.models import RuleActivation, RuleVersion

DEFAULT_AUTHOR = "system:default-rules"
_POSTGRES_LOCK_KEY = 0x72756C6573  # "rules": serialises publish, rollback and the first default version


@dataclass(frozen=True)
class VersionInfo:
    id: int
    label: str
    content_hash: str
    author: str
    note: str
    created_at: datetime
    source: str | None
    active: bool = False


class RuleStoreError(Exception):
    pass


def version_label(version_id: int, content_hash: str) -> str:
    return f"v{version_id}-{content_hash[:8]}"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _active_id(session: Session) -> int | None:
    """The version named by the newest activation, read in the caller's session (never a second one beside it:
    on SQLite a reading transaction may hold the lock the other would wait for)."""
    return session.scalar(select(RuleActivation.version_id).order_by(RuleActivation.id.desc()).limit(1))


def _write_lock(session: Session) -> None:
    """Make the session's transaction the only one changing rule versions until it ends, so that what it read
    (no version yet, the active one) still holds when it writes. The first statement of the transaction."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # a write statement takes SQLite's write lock even when it changes no row, whether the transaction began
        # deferred (pysqlite begins one only at the first write) or IMMEDIATE
        session.execute(text("UPDATE rule_activations SET id = id WHERE 1 = 0"))
    elif dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_LOCK_KEY})


def _rollback_stack(version_ids: list[int], actions: list[str]) -> list[int]:
    """The activation log (oldest first) replayed as an undo stack: a publish pushes its version; a rollback
    to a version on the stack pops back down to it (the versions above were rolled back from), to any other
    version pushes it. The top is the active version, the one below it what a plain rollback returns to."""
    stack: list[int] = []
    for version_id, action in zip(version_ids, actions, strict=True):
        if action == "rollback" and version_id in stack:
            del stack[stack.index(version_id) + 1:]
        else:
            stack.append(version_id)
    return stack


class RuleStore:
    def __init__(self, engine: Engine) -> None:
        from tickets.store import make_sessions  # reads BEGIN deferred on SQLite: the router's poll takes no lock

        self.engine = engine
        self._sessions = make_sessions(engine)

    @classmethod
    def open(cls, database_url: str, migrate: bool = True) -> RuleStore:
        from tickets.migrate import upgrade_database
        from tickets.store import make_engine

        if migrate:
            upgrade_database(database_url)
        return cls(make_engine(database_url))

    def session(self) -> Session:
        return self._sessions()

    # --- reading ---------------------------------------------------------------------------------------------

    def active_version_id(self) -> int | None:
        """The cheap query routers poll: the version named by the newest activation."""
        with self.session() as session:
            return _active_id(session)

    def info(self, version_id: int) -> VersionInfo:
        with self.session() as session:
            version = session.get(RuleVersion, version_id)
            if version is None:
                raise RuleStoreError(f"no rule version {version_id}")
            return self._info(version, _active_id(session))

    def bundle(self, version_id: int) -> RuleBundle:
        with self.session() as session:
            version = session.get(RuleVersion, version_id)
            if version is None:
                raise RuleStoreError(f"no rule version {version_id}")
            return RuleBundle(dict(version.files))

    def compiled(self, version_id: int) -> CompiledRules:
        with self.session() as session:
            version = session.get(RuleVersion, version_id)
            if version is None:
                raise RuleStoreError(f"no rule version {version_id}")
            return compile_rules(RuleBundle(dict(version.files)), version_label(version.id, version.content_hash))

    def active(self) -> VersionInfo | None:
        active = self.active_version_id()
        return None if active is None else self.info(active)

    def versions(self) -> list[VersionInfo]:
        with self.session() as session:
            active = _active_id(session)
            versions = session.scalars(select(RuleVersion).order_by(RuleVersion.id.desc())).all()
            return [self._info(v, active) for v in versions]

    def previous_versions(self) -> list[int]:
        """The versions a plain rollback goes back to, nearest first (the active one and any version rolled
        back from since it was activated left out)."""
        with self.session() as session:
            return self._previous_versions(session)

    @staticmethod
    def _previous_versions(session: Session) -> list[int]:
        log = session.execute(select(RuleActivation.version_id, RuleActivation.action)
                              .order_by(RuleActivation.id)).all()
        stack = _rollback_stack([row.version_id for row in log], [row.action for row in log])
        return stack[-2::-1]

    def activations(self, limit: int = 20) -> list[RuleActivation]:
        with self.session() as session:
            return list(session.scalars(select(RuleActivation).order_by(RuleActivation.id.desc()).limit(limit)))

    @staticmethod
    def _info(version: RuleVersion, active: int | None) -> VersionInfo:
        return VersionInfo(version.id, version_label(version.id, version.content_hash), version.content_hash,
                           version.author, version.note, _aware(version.created_at), version.source,
                           version.id == active)

    # --- changing --------------------------------------------------------------------------------------------

    def publish(self, bundle: RuleBundle, author: str, note: str = "", source: str | None = None,
                action: str = "publish") -> VersionInfo:
        """Validate, store as a new version and make it active. Raises RulesValidationError; nothing is stored then.

        Publishing exactly the active content again is a no-op that returns the active version.
        """
        if not author.strip():
            raise RuleStoreError("a version needs an author")
        compile_rules(bundle)  # raises with every problem named
        with self.session() as session, session.begin():
            _write_lock(session)
            active_id = _active_id(session)
            if active_id is not None:
                active = session.get(RuleVersion, active_id)
                if active is not None and active.content_hash == bundle.content_hash:
                    return self._info(active, active_id)
            return self._add_version(session, bundle, author, note, source, action)

    def _add_version(self, session: Session, bundle: RuleBundle, author: str, note: str, source: str | None,
                     action: str) -> VersionInfo:
        """Store a validated bundle as a new version and activate it, in the caller's transaction."""
        now = datetime.now(UTC)
        version = RuleVersion(content_hash=bundle.content_hash, author=author, note=note, created_at=now,
                              source=source, files=dict(bundle.files))
        session.add(version)
        session.flush()
        session.add(RuleActivation(version_id=version.id, action=action, actor=author, at=now, note=note))
        return self._info(version, version.id)

    def rollback(self, to_version: int | None = None, actor: str = "cli", note: str | None = None) -> VersionInfo:
        """Make an older version active again: `to_version`, or the version that was active before the active
        one was activated (never one that was rolled back from: repeated rollbacks go further back)."""
        with self.session() as session, session.begin():
            _write_lock(session)
            active_id = _active_id(session)
            if active_id is None:
                raise RuleStoreError("no active rule version to roll back from")
            if to_version is None:
                previous = self._previous_versions(session)
                if not previous:
                    raise RuleStoreError(f"v{active_id} is the oldest version in the activation history: "
                                         "nothing to roll back to")
                target = previous[0]
            else:
                target = to_version
            version = session.get(RuleVersion, target)
            if version is None:
                raise RuleStoreError(f"no rule version {target}")
            if target == active_id:
                raise RuleStoreError(f"v{target} is already active")
            compile_rules(RuleBundle(dict(version.files)))  # a version that no longer compiles is not activated
            session.add(RuleActivation(version_id=target, action="rollback", actor=actor, at=datetime.now(UTC),
                                       note=note or f"rollback from v{active_id}"))
            return self._info(version, target)

    def ensure_default(self, folder: Path = DEFAULT_TABLES_DIR) -> VersionInfo:
        """Publish the shipped rules as the first version when the store has none; otherwise the active one.

        Workers starting together on an empty database each call this: the check and the write are one
        transaction under the write lock, so only the first one publishes."""
        active = self.active()
        if active is not None:
            return active
        bundle = load_bundle(folder)
        compile_rules(bundle)  # before taking the lock: it takes a while, and raises with every problem named
        with self.session() as session, session.begin():
            _write_lock(session)
            active_id = _active_id(session)
            if active_id is not None:  # another worker was first
                return self._info(session.get_one(RuleVersion, active_id), active_id)
            newest = session.scalar(select(RuleVersion).order_by(RuleVersion.id.desc()).limit(1))
            if newest is None:
                return self._add_version(session, bundle, DEFAULT_AUTHOR, "rules shipped with the code",
                                         str(folder), "default")
            # versions but no activation (restored by hand): the newest one
            session.add(RuleActivation(version_id=newest.id, action="default", actor=DEFAULT_AUTHOR,
                                       at=datetime.now(UTC), note="no activation found: newest version"))
            return self._info(newest, newest.id)
