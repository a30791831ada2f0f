"""`hotline rules …`: validate, publish, list, show, roll back, export and backtest routing rule sets.

Mount with `app.add_typer(rules_app, name="rules")` in hotline/cli.py. The ticket database is
`get_settings().resolved_database_url` (HOTLINE_DATABASE_URL …), the same one the pipeline reads the active
version from, so a publish or rollback reaches running workers within their refresh interval.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from dispatch_rules.bundle import DEFAULT_TABLES_DIR, TABLE_NAMES, BundleError, RuleBundle, TableName, load_bundle
from dispatch_rules.compiler import CompiledRules, RuleError, RulesValidationError, compile_rules, validate_bundle
from dispatch_rules.versions import RuleStore, RuleStoreError, VersionInfo
from hotline.settings import ModelChoice, get_settings

rules_app = typer.Typer(help="Routing rules (GoRules ZEN decision tables): validate, publish, roll back, backtest.",
                        no_args_is_help=True)
console = Console(width=None if Console().is_terminal else 200)

PathArgument = Annotated[Path, typer.Argument(
    help="A rule-set folder (like dispatch_rules/tables), or one edited table file that replaces the file of "
         "that name in the active version.")]


def open_store() -> RuleStore:
    return RuleStore.open(get_settings().resolved_database_url)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _active_bundle(store: RuleStore | None) -> RuleBundle:
    if store is not None:
        store.ensure_default(DEFAULT_TABLES_DIR)
        active = store.active_version_id()
        if active is not None:
            return store.bundle(active)
    return load_bundle(DEFAULT_TABLES_DIR)


def _load(path: Path, store: RuleStore | None) -> RuleBundle:
    try:
        return load_bundle(path, None if path.is_dir() else _active_bundle(store))
    except BundleError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from error


def _print_problems(errors: list[RuleError], warnings: list[RuleError]) -> None:
    if errors:
        table = Table(title=f"{len(errors)} error(s): the rule set is rejected", title_style="bold red")
        for column in ("table", "row", "field", "problem"):
            table.add_column(column, overflow="fold")
        for e in errors:
            table.add_row(e.table, e.row or "-", e.field or "-", e.message)
        console.print(table)
    for w in warnings:
        console.print(f"[yellow]warning[/] {w}")


def _print_version(info: VersionInfo, prefix: str = "") -> None:
    console.print(f"{prefix}[bold]{info.label}[/] by {info.author} at {info.created_at:%Y-%m-%d %H:%M:%S %Z}"
                  f"{': ' + info.note if info.note else ''}\n  sha256 {info.content_hash}")


@rules_app.command("validate")
def validate_command(path: PathArgument) -> None:
    """Check a rule set without publishing it; exit 1 when it has errors (each names table, row and field)."""
    bundle = _load(path, _store_or_none())
    report = validate_bundle(bundle)
    _print_problems(report.errors, report.warnings)
    if not report.ok:
        raise typer.Exit(1)
    console.print(f"[green]valid[/]: {path} (sha256 {bundle.content_hash[:12]}, {len(report.warnings)} warning(s))")


def _store_or_none() -> RuleStore | None:
    """validate works without a database too (a single file then overlays the shipped rules)."""
    try:
        return open_store()
    except Exception:  # no database reachable: validation still runs against the shipped rules
        return None


@rules_app.command("publish")
def publish_command(
    path: PathArgument,
    author: Annotated[str, typer.Option(help="Who publishes (recorded with the version).")],
    note: Annotated[str, typer.Option(help="Why: recorded with the version.")] = "",
) -> None:
    """Validate and publish as a new version, active at once (running routers pick it up within seconds)."""
    store = open_store()
    store.ensure_default(DEFAULT_TABLES_DIR)  # the shipped rules stay version 1, so one can roll back to them
    bundle = _load(path, store)
    previous = store.active()
    try:
        info = store.publish(bundle, author=author, note=note, source=str(path.resolve()))
    except RulesValidationError as error:
        _print_problems(error.errors, error.warnings)
        console.print("[red]not published[/]: the active version keeps serving")
        raise typer.Exit(1) from error
    except RuleStoreError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from error
    if previous is not None and previous.id == info.id:
        console.print(f"identical to the active version {info.label}: nothing published")
        return
    _print_version(info, "published ")
    if previous is not None:
        console.print(f"  replaces {previous.label}; roll back with `hotline rules rollback {previous.id}`")


@rules_app.command("list")
def list_command(
    history: Annotated[int, typer.Option(help="Also show the last N activations (publish / rollback).")] = 0,
) -> None:
    """Published versions, newest first; the active one is marked."""
    store = open_store()
    store.ensure_default(DEFAULT_TABLES_DIR)
    table = Table(title="rule versions")
    for column in ("", "version", "published", "author", "note", "sha256"):
        table.add_column(column, overflow="fold")
    for info in store.versions():
        table.add_row("[green]●[/]" if info.active else "", info.label, f"{info.created_at:%Y-%m-%d %H:%M}",
                      info.author, info.note, info.content_hash[:12], style="bold" if info.active else "")
    console.print(table)
    if history:
        log = Table(title="activations")
        for column in ("at", "version", "action", "actor", "note"):
            log.add_column(column, overflow="fold")
        for a in store.activations(history):
            log.add_row(f"{a.at:%Y-%m-%d %H:%M:%S}", f"v{a.version_id}", a.action, a.actor, a.note or "")
        console.print(log)


@rules_app.command("rollback")
def rollback_command(
    version: Annotated[int | None, typer.Argument(help="Version number to activate; default: the one before.")] = None,
    actor: Annotated[str | None, typer.Option(help="Who rolls back (default: the OS user).")] = None,
    note: Annotated[str | None, typer.Option(help="Why.")] = None,
) -> None:
    """Make an earlier version active again (one command; running routers follow within seconds)."""
    store = open_store()
    store.ensure_default(DEFAULT_TABLES_DIR)
    try:
        info = store.rollback(version, actor or _user(), note)
    except (RuleStoreError, RulesValidationError) as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from error
    _print_version(info, "active again: ")


@rules_app.command("show")
def show_command(
    version: Annotated[int | None, typer.Option(help="Version number (default: the active one).")] = None,
    table: Annotated[TableName | None, typer.Option(help="Only this table.")] = None,
) -> None:
    """The active (or given) version: who published it, and every table's rows."""
    store = open_store()
    store.ensure_default(DEFAULT_TABLES_DIR)
    version_id = version or store.active_version_id()
    assert version_id is not None
    try:
        info = store.info(version_id)
    except RuleStoreError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from error
    _print_version(info, "active: " if info.active else "version: ")
    rules = store.compiled(version_id)
    for name in TABLE_NAMES:
        if table and name != table:
            continue
        print_table(rules, name)


def print_table(rules: CompiledRules, name: TableName) -> None:
    source = rules.tables[name]
    view = Table(title=f"{name} — {source.file} (hit policy {source.hit_policy})", show_lines=False)
    view.add_column("#", justify="right")
    view.add_column("rule id", overflow="fold")
    view.add_column("when", overflow="fold")
    view.add_column("then", overflow="fold")
    for row in source.rows:
        when = "; ".join(f"{f} {cell}" for f, cell in row.cells.items()) or "(always)"
        then = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in row.outputs.items() if k != "rule_id")
        view.add_row(str(row.index + 1), row.rule_id or "-", when, then)
    console.print(view)


@rules_app.command("export")
def export_command(folder: Annotated[Path, typer.Argument(help="Folder to write the rule set to.")],
                   version: Annotated[int | None, typer.Option(help="Default: the active version.")] = None) -> None:
    """Write a version's files to a folder, to edit in the ZEN editor and publish again."""
    store = open_store()
    store.ensure_default(DEFAULT_TABLES_DIR)
    version_id = version or store.active_version_id()
    assert version_id is not None
    for path in store.bundle(version_id).write(folder):
        console.print(str(path))


@rules_app.command("backtest")
def backtest_command(
    rules: Annotated[Path, typer.Option("--rules", help="Proposed rule set: folder or one edited table file.")],
    calls: Annotated[Path | None, typer.Option(
        help="CSV of calls (id,title,text or the 留言编号/留言主题/留言详情[/答复意见] export) to classify and "
             "route; default: replay the stored tickets.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N calls / newest N tickets.")] = None,
    model: Annotated[ModelChoice | None, typer.Option(
        help="Intent model for --calls; default: the configured one, as the pipeline runs it.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Compare the active rules with proposed ones on stored tickets or a CSV of calls."""
    from dispatch_rules.backtest import backtest, cases_from_csv, cases_from_tickets, print_backtest

    settings = get_settings()
    store = open_store()
    store.ensure_default(DEFAULT_TABLES_DIR)
    active_id = store.active_version_id()
    assert active_id is not None
    active = store.compiled(active_id)
    try:
        proposed = compile_rules(_load(rules, store), label=f"proposed:{rules.name}")
    except RulesValidationError as error:
        _print_problems(error.errors, error.warnings)
        raise typer.Exit(1) from error
    if calls is not None:
        from rich.progress import Progress

        from hotline.pipeline import call_classifier

        try:
            classify, model_name = call_classifier(settings, model)
        except FileNotFoundError as error:  # no model built yet
            console.print(f"[red]{error}[/]")
            raise typer.Exit(2) from error
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"classifying {calls.name}", total=None)
            cases, problems = cases_from_csv(calls, classify, active.directory, active.manifest.timezone, limit,
                                             lambda done, total: progress.update(task, completed=done, total=total))
        for problem in problems:  # the CSV is the analyst's own file: name each row left out, route the rest
            console.print(f"[yellow]skipped[/] {problem}", highlight=False)
        label = f"{calls.name} ({model_name})"
    else:
        from tickets.store import TicketStore

        cases = cases_from_tickets(TicketStore(settings.resolved_database_url), limit, active.manifest.timezone)
        label = f"{len(cases)} stored tickets"
    result = backtest(active, proposed, cases, label)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        print_backtest(result, console)
