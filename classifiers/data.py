"""Reading the hotline training data: title + text, with the tokenized rows' spaces removed."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LabelledText:
    id: str
    text: str
    label: str
    form: str


def message_text(title: str | None, text: str) -> str:
    title = (title or "").strip()
    text = text.strip()
    if title and not text.startswith(title):
        return f"{title}。{text}"
    return text or title


def despace(text: str) -> str:
    """Tokenized rows were published as space-joined jieba tokens; Chinese live text has no spaces."""
    return "".join(text.split())


def read_labelled_csv(path: Path, text_col: str = "text", label_col: str = "category",
                      title_col: str | None = "title") -> list[LabelledText]:
    rows: list[LabelledText] = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            form = row.get("form", "raw")
            title = row.get(title_col) if title_col else None
            text = message_text(title, row[text_col])
            if form == "tokenized":
                text = despace(text)
            rows.append(LabelledText(row.get("id", str(len(rows))), text, row[label_col], form))
    return rows


NEAR_DUPLICATE_COSINE = 0.35


def split_raw_held_out(rows: list[LabelledText]) -> tuple[list[LabelledText], list[LabelledText]]:
    """Train on tokenized rows, evaluate on raw rows, and keep the raw rows' tokenized twins out of training.

    Most raw messages were also published tokenized; training on those twins would leak the answers. A
    tokenized row whose character-bigram TF-IDF cosine to any raw row reaches NEAR_DUPLICATE_COSINE is
    dropped (unrelated pairs sit below 0.3, twins mostly above 0.5).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    held_out = [r for r in rows if r.form == "raw"]
    candidates = [r for r in rows if r.form != "raw"]
    if not held_out or not candidates:
        return candidates, held_out
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(2, 2)).fit([r.text for r in rows])
    similarity = vectorizer.transform([r.text for r in candidates]) @ vectorizer.transform(
        [r.text for r in held_out]
    ).T
    closest = similarity.max(axis=1).toarray().ravel()
    train = [r for r, score in zip(candidates, closest, strict=True) if score < NEAR_DUPLICATE_COSINE]
    return train, held_out
