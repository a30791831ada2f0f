"""Publishing, listing and rolling back rule-set versions (stored in the ticket database)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from dispatch_rules.bundle import DEFAULT_TABLES_DIR, RuleBundle, load_bundle
from dispatch_rules.compiler import CompiledRules, compile_rules
from dispatch_rules.models import RuleActivation, RuleVersion

DEFAULT_AUTHOR = "system:default-rules"


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


class RuleStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

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
            return session.scalar(select(RuleActivation.version_id).order_by(RuleActivation.id.desc()).limit(1))

    def info(self, version_id: int) -> VersionInfo:
        with self.session() as session:
            version = session.get(RuleVersion, version_id)
            if version is None:
                raise RuleStoreError(f"no rule version {version_id}")
            return self._info(version, self.active_version_id())

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
        active = self.active_version_id()
        with self.session() as session:
            versions = session.scalars(select(RuleVersion).order_by(RuleVersion.id.desc())).all()
            return [self._info(v, active) for v in versions]

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
        content_hash = bundle.content_hash
        now = datetime.now(UTC)
        with self.session() as session, session.begin():
            active_id = session.scalar(
                select(RuleActivation.version_id).order_by(RuleActivation.id.desc()).limit(1))
            if active_id is not None:
                active = session.get(RuleVersion, active_id)
                if active is not None and active.content_hash == content_hash:
                    return self._info(active, active_id)
            version = RuleVersion(content_hash=content_hash, author=author, note=note, created_at=now,
                                  source=source, files=dict(bundle.files))
            session.add(version)
            session.flush()
            session.add(RuleActivation(version_id=version.id, action=action, actor=author, at=now, note=note))
            return self._info(version, version.id)

    def rollback(self, to_version: int | None = None, actor: str = "cli", note: str | None = None) -> VersionInfo:
        """Make an older version active again: `to_version`, or the newest one below the active version."""
        with self.session() as session, session.begin():
            active_id = session.scalar(
                select(RuleActivation.version_id).order_by(RuleActivation.id.desc()).limit(1))
            if active_id is None:
                raise RuleStoreError("no active rule version to roll back from")
            if to_version is None:
                target = session.scalar(select(func.max(RuleVersion.id)).where(RuleVersion.id < active_id))
                if target is None:
                    raise RuleStoreError(f"v{active_id} is the oldest version: nothing to roll back to")
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
        """Publish the shipped rules as the first version when the store has none; otherwise the active one."""
        with self.session() as session:
            has_versions = session.scalar(select(func.count()).select_from(RuleVersion))
        if not has_versions:
            return self.publish(load_bundle(folder), DEFAULT_AUTHOR, "rules shipped with the code",
                                source=str(folder), action="default")
        active = self.active()
        if active is None:  # versions but no activation (restored by hand): the newest one
            newest = self.versions()[0]
            with self.session() as session, session.begin():
                session.add(RuleActivation(version_id=newest.id, action="default", actor=DEFAULT_AUTHOR,
                                           at=datetime.now(UTC), note="no activation found: newest version"))
            return self.info(newest.id)
        return active
