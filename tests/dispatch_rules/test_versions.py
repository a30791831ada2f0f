"""Publishing, rollback and hot reload: the router follows the active version without a restart."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError

from dispatch_rules.bundle import RuleBundle
from dispatch_rules.compiler import CompiledRules, RulesValidationError, compile_rules
from dispatch_rules.models import RuleActivation, RuleVersion
from dispatch_rules.router import DecisionTableRouter, PublishedRules
from dispatch_rules.versions import DEFAULT_AUTHOR, RuleStore, RuleStoreError, VersionInfo
from tickets.migrate import alembic_config

from ..postgres_server import postgres_server
from .conftest import call, edit_table, set_output


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def to_city_management(shipped: RuleBundle) -> RuleBundle:
    """A proposed change: 城乡建设 by default to 城管 instead of 住建."""
    return edit_table(shipped, "department.json", lambda c: set_output(c, "hl.cx.default", "role", "城管"))


def test_the_shipped_rules_become_version_1_once(store: RuleStore, shipped: RuleBundle) -> None:
    assert store.active_version_id() is None
    first = store.ensure_default()
    again = store.ensure_default()
    assert first.id == again.id == 1 and first.author == DEFAULT_AUTHOR and first.active
    assert first.content_hash == shipped.content_hash and first.label == f"v1-{shipped.content_hash[:8]}"
    assert len(store.versions()) == 1


def test_publish_records_author_time_note_and_hash(store: RuleStore, shipped: RuleBundle) -> None:
    store.ensure_default()
    proposed = to_city_management(shipped)
    before = datetime.now(UTC)
    info = store.publish(proposed, author="analyst-li", note="城乡建设 default to 城管")
    assert info.id == 2 and info.active and store.active_version_id() == 2
    assert (info.author, info.note, info.content_hash) == ("analyst-li", "城乡建设 default to 城管",
                                                          proposed.content_hash)
    assert info.created_at >= before.replace(microsecond=0)
    assert store.bundle(2).files == proposed.files
    same = store.publish(proposed, author="analyst-li", note="again")
    assert same.id == 2 and len(store.versions()) == 2  # identical to the active one: nothing new


def test_a_broken_table_is_not_published_and_the_active_version_stays(store: RuleStore,
                                                                      shipped: RuleBundle) -> None:
    store.ensure_default()
    broken = edit_table(shipped, "department.json", lambda c: set_output(c, "hl.cx.default", "role", "拆迁办"))
    with pytest.raises(RulesValidationError) as raised:
        store.publish(broken, author="analyst-li")
    assert raised.value.errors[0].table == "department.json" and raised.value.errors[0].field == "role"
    assert store.active_version_id() == 1 and len(store.versions()) == 1


def test_rollback_is_one_call(store: RuleStore, shipped: RuleBundle) -> None:
    store.ensure_default()
    store.publish(to_city_management(shipped), author="analyst-li")
    back = store.rollback(actor="supervisor-wang")
    assert back.id == 1 and store.active_version_id() == 1
    with pytest.raises(RuleStoreError, match="oldest"):
        store.rollback()
    forward = store.rollback(2, actor="supervisor-wang", note="fixed upstream")
    assert forward.id == 2 and store.active_version_id() == 2
    assert [a.action for a in store.activations()] == ["rollback", "rollback", "publish", "default"]
    with pytest.raises(RuleStoreError, match="already active"):
        store.rollback(2)


def test_router_picks_up_a_new_version_without_restart(database_url: str, shipped: RuleBundle) -> None:
    clock = Clock()
    worker_store = RuleStore.open(database_url, migrate=False)  # the running pipeline
    rules = PublishedRules(worker_store, refresh_seconds=5.0, clock=clock)
    router = DecisionTableRouter(rules)
    first = router.route_call(call("城乡建设", call_id="a"))
    assert first.department == "A3区住房和城乡建设局" and first.rules_version.startswith("v1-")

    cli_store = RuleStore.open(database_url, migrate=False)  # another process: `hotline rules publish`
    cli_store.publish(to_city_management(shipped), author="analyst-li", note="try 城管")
    clock.now = 4.9
    assert router.route_call(call("城乡建设", call_id="b")).department == "A3区住房和城乡建设局"
    clock.now = 5.0
    switched = router.route_call(call("城乡建设", call_id="c"))
    assert switched.department == "A3区城市管理局" and switched.rules_version.startswith("v2-")

    cli_store.rollback(actor="supervisor-wang")
    clock.now = 10.0
    back = router.route_call(call("城乡建设", call_id="d"))
    assert back.department == "A3区住房和城乡建设局" and back.rules_version.startswith("v1-")


def test_a_version_that_does_not_compile_is_skipped_while_the_old_one_serves(database_url: str) -> None:
    clock = Clock()
    store = RuleStore.open(database_url, migrate=False)
    rules = PublishedRules(store, refresh_seconds=1.0, clock=clock)
    router = DecisionTableRouter(rules)
    assert router.route_call(call()).rules_version.startswith("v1-")
    with store.session() as session, session.begin():  # written past validation, e.g. by hand in the DB
        files = dict(store.bundle(1).files)
        files["department.json"] = "{ not json"
        version = RuleVersion(content_hash="x" * 64, author="someone", note="", created_at=datetime.now(UTC),
                              source=None, files=files)
        session.add(version)
    with store.session() as session, session.begin():
        from dispatch_rules.models import RuleActivation

        session.add(RuleActivation(version_id=2, action="publish", actor="someone", at=datetime.now(UTC)))
    clock.now = 2.0
    decision = router.route_call(call())
    assert decision.rules_version.startswith("v1-") and decision.department == "A3区住房和城乡建设局"


def test_migration_0002_upgrades_and_downgrades(database_url: str) -> None:
    store = RuleStore.open(database_url, migrate=False)
    assert {"rule_versions", "rule_activations", "tickets"} <= set(inspect(store.engine).get_table_names())
    store.engine.dispose()
    command.downgrade(alembic_config(database_url), "0001")
    store = RuleStore.open(database_url, migrate=False)
    names = set(inspect(store.engine).get_table_names())
    assert "rule_versions" not in names and "tickets" in names
    store.engine.dispose()
    command.upgrade(alembic_config(database_url), "head")


def test_the_production_router_shares_the_ticket_database(database_url: str) -> None:
    from tickets.store import TicketStore

    tickets = TicketStore(database_url, migrate=False)
    router = DecisionTableRouter.published(tickets.engine, refresh_seconds=5.0)
    decision = router.route_call(call("教育文体"))
    assert decision.department == "A3区教育局" and decision.rules_version.startswith("v1-")
    assert tickets.create_from_decision(decision).ticket.rules_version == decision.rules_version


def store_unchecked(store: RuleStore, bundle: RuleBundle) -> int:
    """Store and activate a version past validation: published before a check was added, or by hand."""
    with store.session() as session, session.begin():
        version = RuleVersion(content_hash=bundle.content_hash, author="someone", note="", source=None,
                              created_at=datetime.now(UTC), files=dict(bundle.files))
        session.add(version)
        session.flush()
        session.add(RuleActivation(version_id=version.id, action="publish", actor="someone", at=datetime.now(UTC)))
        return version.id


def broken(bundle: RuleBundle) -> RuleBundle:
    return bundle.replace("department.json", "{ not json")


class FlakyStore:
    """The real store whose compiled() fails once, as a dropped database connection would."""

    def __init__(self, store: RuleStore) -> None:
        self.store, self.fail_next = store, False

    def active_version_id(self) -> int | None:
        return self.store.active_version_id()

    def ensure_default(self, folder: Path) -> object:
        return self.store.ensure_default(folder)

    def previous_versions(self) -> list[int]:
        return self.store.previous_versions()

    def compiled(self, version_id: int) -> CompiledRules:
        if self.fail_next:
            self.fail_next = False
            raise OperationalError("SELECT rule_versions", {}, Exception("server closed the connection"))
        return self.store.compiled(version_id)


def test_a_database_error_while_loading_a_new_version_is_retried(store: RuleStore, shipped: RuleBundle) -> None:
    clock, flaky = Clock(), FlakyStore(store)
    router = DecisionTableRouter(PublishedRules(flaky, refresh_seconds=5.0, clock=clock))
    assert router.route_call(call()).rules_version.startswith("v1-")
    store.publish(to_city_management(shipped), author="analyst-li")
    flaky.fail_next = True
    clock.now = 5.0
    assert router.route_call(call()).rules_version.startswith("v1-")  # the old rules serve meanwhile
    clock.now = 10.0
    switched = router.route_call(call())
    assert switched.rules_version.startswith("v2-") and switched.department == "A3区城市管理局"


def test_a_worker_starting_on_a_version_that_no_longer_compiles_serves_the_one_before(
        store: RuleStore, shipped: RuleBundle) -> None:
    store.ensure_default()
    store.publish(to_city_management(shipped), author="analyst-li")
    bad = store_unchecked(store, broken(shipped))
    source = PublishedRules(store, refresh_seconds=5.0, clock=Clock())
    decision = DecisionTableRouter(source).route_call(call())
    assert decision.rules_version.startswith("v2-") and decision.department == "A3区城市管理局"
    assert source.version_id == bad  # rejected once, not recompiled at every check


def test_a_worker_falls_back_to_the_shipped_rules_when_no_stored_version_compiles(
        store: RuleStore, shipped: RuleBundle) -> None:
    store_unchecked(store, broken(shipped))
    decision = DecisionTableRouter(PublishedRules(store, clock=Clock())).route_call(call())
    assert decision.rules_version == f"shipped-{shipped.content_hash[:8]}"
    assert decision.department == "A3区住房和城乡建设局"


def test_a_plain_rollback_never_returns_to_a_version_rolled_back_from(store: RuleStore,
                                                                      shipped: RuleBundle) -> None:
    def version(role: str) -> RuleBundle:
        return edit_table(shipped, "department.json", lambda c: set_output(c, "hl.cx.default", "role", role))

    store.ensure_default()
    store.publish(version("城管"), author="li", note="v2 good")
    store.publish(version("水务"), author="li", note="v3 bad")
    store.rollback(2, actor="ops", note="v3 sends 城乡建设 to 水务")
    store.publish(version("自然资源"), author="li", note="v4")
    assert store.rollback(actor="ops").id == 2  # the version active before v4, not v3 (the highest below 4)
    assert store.previous_versions() == [1]
    assert store.rollback(actor="ops").id == 1
    with pytest.raises(RuleStoreError, match="nothing to roll back to"):
        store.rollback()


def ensure_default_together(url: str, monkeypatch: pytest.MonkeyPatch, workers: int = 3) -> list[VersionInfo]:
    """Workers starting at once on an empty database: each has found no version when the others look."""
    RuleStore.open(url, migrate=False).versions()  # a first connection sets up the file (WAL) beforehand
    stores = [RuleStore.open(url, migrate=False) for _ in range(workers)]
    all_looked = threading.Barrier(workers, timeout=20)

    def compile_after_all_looked(bundle: RuleBundle, label: str | None = None) -> CompiledRules:
        compiled = compile_rules(bundle, label)
        all_looked.wait()
        return compiled

    monkeypatch.setattr("dispatch_rules.versions.compile_rules", compile_after_all_looked)
    with ThreadPoolExecutor(workers) as pool:
        started = list(pool.map(lambda s: s.ensure_default(), stores))
    assert {info.id for info in started} == {1}
    return stores[0].versions()


def test_workers_starting_together_publish_the_shipped_rules_once(database_url: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert [v.id for v in ensure_default_together(database_url, monkeypatch)] == [1]


def test_workers_starting_together_on_postgresql_publish_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with postgres_server() as url:
        RuleStore.open(url)  # migrate
        assert [v.id for v in ensure_default_together(url, monkeypatch)] == [1]
