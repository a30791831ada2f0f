"""Repeat-report search of the assist stage: recent calls of a district read from its store and scored against a
new call (the part of a call's assist work that grows with traffic; the e5 work is in text_bench)."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from classifiers.assist_store import AssistStore
from classifiers.duplicates import read_messages
from classifiers.knowledge import lexical_similarity, load_knowledge_base
from hotline.settings import get_settings


def run(recent: int, queries: int) -> dict[str, float]:
    settings = get_settings()
    texts = list(read_messages(settings.hotline_data_dir / "unlabeled_messages.csv").values())
    if len(texts) < recent + queries:
        raise SystemExit(f"need {recent + queries} messages, the file has {len(texts)}")
    lexical = lexical_similarity(load_knowledge_base(settings.hotline_data_dir / "kb_replies.csv"))
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        store = AssistStore(f"sqlite:///{Path(tmp) / 'assist.sqlite3'}")
        for n, text in enumerate(texts[:recent]):
            store.remember_call(f"c{n}", "A3区", text[:60], text, now - timedelta(minutes=n))
        since = now - timedelta(days=30)

        def search(text: str) -> float:
            started = time.perf_counter()
            calls = store.recent_calls("A3区", since, exclude="none", limit=recent)
            lexical.scores_by_key(text, [c.call_id for c in calls], [c.text for c in calls])
            return time.perf_counter() - started

        first = search(texts[recent])  # no call's vector kept yet
        timings = sorted(search(text) for text in texts[recent + 1: recent + queries])
        store.engine.dispose()
    return {
        "recent_calls": recent,
        "first_search_ms": first * 1000,
        "p50_ms": statistics.median(timings) * 1000,
        "p99_ms": timings[int(0.99 * (len(timings) - 1))] * 1000,
        "searches_per_s": len(timings) / sum(timings),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recent", type=int, default=2000, help="calls in the district's 30-day window")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    for key, value in run(args.recent, args.queries).items():
        print(f"{key:>18}: {value:,.1f}" if isinstance(value, float) else f"{key:>18}: {value}")


if __name__ == "__main__":
    main()
