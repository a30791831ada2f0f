"""Decision-table router throughput: decisions per second on real hotline messages and camera events.

Calls are the labelled messages of messages_train.csv taken as classified (their category, confidence 0.9,
place and urgency extracted as the text stage does), so the figure is the router alone, not the classifier.
Also: the same through `PublishedRules` on a SQLite ticket DB (the production path, with its periodic
active-version check), and the time to validate + compile the shipped rule set.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from classifiers.data import despace, message_text
from classifiers.extract import assess_urgency, extract_place
from contracts import CategoryScore, Channel, ClassifiedCall, DetectedEvent, EventKind
from dispatch_rules.bundle import default_bundle
from dispatch_rules.compiler import compile_rules
from dispatch_rules.router import DecisionTableRouter, PublishedRules
from dispatch_rules.versions import RuleStore
from hotline.settings import get_settings


def load_calls(path: Path, n: int) -> list[ClassifiedCall]:
    calls: list[ClassifiedCall] = []
    start = datetime(2026, 11, 23, tzinfo=UTC)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for i, row in enumerate(itertools.islice(csv.DictReader(handle), n)):
            text = message_text(row["title"], row["text"])
            text = despace(text) if row.get("form") == "tokenized" else text
            place = extract_place(text)
            urgency = assess_urgency(text)
            calls.append(ClassifiedCall(
                call_id=f"bench-{i}", received_at=start + timedelta(minutes=7 * i), channel=Channel.WEB,
                title=row["title"][:500] or None, text=text[:20_000], category=row["category"], confidence=0.9,
                top_k=[CategoryScore(label=row["category"], score=0.9)], classifier="labels",
                district=place.district or place.city, address=place.address, urgency=urgency.level,
                urgency_terms=urgency.terms,
            ))
    return calls


def make_events(n: int) -> list[DetectedEvent]:
    kinds = list(EventKind)
    districts = ["A1区", "A3区", "A7县", "A9市", "K1区"]
    start = datetime(2026, 11, 23, tzinfo=UTC)
    return [DetectedEvent(event_id=f"bench-e{i}", camera_id=f"cam-{i % 50}", kind=kinds[i % len(kinds)],
                          state="started", started_at=start + timedelta(minutes=13 * i),
                          observed_at=start + timedelta(minutes=13 * i), confidence=0.35 + (i % 6) / 10,
                          district=districts[i % len(districts)], detector="bench")
            for i in range(n)]


def _rate(router: DecisionTableRouter, calls: list[ClassifiedCall], events: list[DetectedEvent],
          cpu: bool = False) -> float:
    """Decisions per second of wall-clock time (or of this process's CPU time: steadier on a shared machine)."""
    clock = time.process_time if cpu else time.perf_counter
    started = clock()
    for c in calls:
        router.route_call(c)
    for e in events:
        router.route_event(e)
    return (len(calls) + len(events)) / (clock() - started)


def run(n_calls: int, n_events: int) -> dict[str, float]:
    settings = get_settings()
    calls = load_calls(settings.hotline_data_dir / "messages_train.csv", n_calls)
    events = make_events(n_events)
    bundle = default_bundle()
    started = time.perf_counter()
    rules = compile_rules(bundle, "bench")
    compile_s = time.perf_counter() - started
    static = DecisionTableRouter(rules)
    _rate(static, calls[:50], events[:10])  # warm-up
    figures: dict[str, float] = {"calls": len(calls), "camera_events": len(events),
                                 "validate_and_compile_ms": compile_s * 1000}
    figures["calls_per_s"] = _rate(static, calls, [])
    figures["camera_events_per_s"] = _rate(static, [], events)
    figures["mixed_decisions_per_s"] = _rate(static, calls, events)
    figures["mixed_decisions_per_cpu_s"] = _rate(static, calls, events, cpu=True)
    manual = sum(1 for c in calls if static.route_call(c).department is None)
    figures["calls_to_manual_queue_pct"] = 100 * manual / max(1, len(calls))
    with tempfile.TemporaryDirectory() as tmp:
        store = RuleStore.open(f"sqlite:///{Path(tmp) / 'tickets.sqlite3'}")
        published = DecisionTableRouter(PublishedRules(store, refresh_seconds=5.0))
        published.route_call(calls[0])
        figures["published_rules_decisions_per_s"] = _rate(published, calls, events)
        always_check = DecisionTableRouter(PublishedRules(store, refresh_seconds=0.0))
        figures["check_every_decision_per_s"] = _rate(always_check, calls[:500], events[:100])
        store.engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--events", type=int, default=500)
    args = parser.parse_args()
    figures = run(args.calls, args.events)
    print(f"decision-table router (zen-engine), {figures['calls']:.0f} real messages + "
          f"{figures['camera_events']:.0f} camera events, one process")
    for name, value in figures.items():
        print(f"  {name:<36} {value:>10.1f}")


if __name__ == "__main__":
    main()
