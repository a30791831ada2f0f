"""Reading the hotline training data: title + text, with the tokenized rows' spaces removed."""

from __future__ import annotations

import codecs
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


class DataFileError(ValueError):
    """A data file that cannot be read as asked: the message names the file and what is wrong."""


def text_encoding(path: Path) -> str:
    """UTF-8 (a BOM or none), or GB18030 for a file that is not UTF-8: Chinese spreadsheets export GBK."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as handle:
        try:
            while chunk := handle.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "gb18030"
    return "utf-8-sig"


def read_labelled_csv(path: Path, text_col: str = "text", label_col: str = "category",
                      title_col: str | None = "title") -> list[LabelledText]:
    rows: list[LabelledText] = []
    with path.open(encoding=text_encoding(path), newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:  # an empty file
            return rows
        _require_columns(path, list(reader.fieldnames), [text_col, label_col])
        for row in reader:
            short = next((c for c in (text_col, label_col) if row[c] is None), None)
            if short is not None:
                raise DataFileError(f"{path.name} line {reader.line_num}: the row is shorter than the header "
                                    f"(no {short})")
            form = row.get("form")
            if form is None:  # no form column, or a short row without it
                form = "raw"
            title = row.get(title_col) if title_col else None
            text = message_text(title, row[text_col])
            if form == "tokenized":
                text = despace(text)
            row_id = row.get("id")
            rows.append(LabelledText(str(len(rows)) if row_id is None else row_id, text, row[label_col], form))
    return rows


def _require_columns(path: Path, present: list[str], needed: list[str]) -> None:
    missing = [c for c in needed if c not in present]
    if missing:
        raise DataFileError(f"{path.name} has no column {', '.join(missing)}; its columns: {', '.join(present)}")


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
