"""The knowledge base of past cases with official replies, and the embedding index agents search.

Seeded from kb_replies.csv (a message and the reply of the department that handled it). The department is
read from the reply: its signature before the date (…A7县教育局2019年5月8日) or the body it was passed to
(已转市房产局…). About a fifth of the replies name one; the others keep department None.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import structlog

from classifiers.data import message_text
from classifiers.lexical import LexicalSimilarity

FloatArray = np.ndarray[Any, np.dtype[np.float32]]
log = structlog.get_logger(__name__)

_ORG_SUFFIX = r"(?:人民政府|街道办事处|委员会|管理局|分局|局|委|办公室|政府|管理处|大队|支队|中心)"
_ORG = rf"((?:[A-Z]\d{{0,2}}[市区县]|[省市区县])?[\u4e00-\u9fff]{{1,14}}?{_ORG_SUFFIX})"
_SIGNATURE = re.compile(_ORG + r"\s*\d{4}年\d{1,2}月\d{1,2}日")
_TRANSFER = re.compile(r"(?:已转|转交|转|交由|属)" + _ORG)
_NOT_A_DEPARTMENT = re.compile(r"^(?:我|本|该|贵|当地|有关|相关|于|和|及|的|村委|业委|分局$|局$)")


def department_in_reply(reply: str) -> str | None:
    """The department that signed or received the case, if the reply names one."""
    for pattern in (_SIGNATURE, _TRANSFER):
        names = [n for n in pattern.findall(reply) if not _NOT_A_DEPARTMENT.search(n) and len(n) >= 3]
        if names:
            return str(names[-1] if pattern is _SIGNATURE else names[0])
    return None


@dataclass(frozen=True)
class KbCase:
    case_id: str
    title: str
    message: str
    reply: str
    department: str | None

    @property
    def full_text(self) -> str:
        return message_text(self.title, self.message)

    @property
    def search_text(self) -> str:
        """Title and opening of the message: what the case is about, at a bounded encoding cost."""
        return self.full_text[:120]


def load_knowledge_base(path: Path) -> list[KbCase]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [
            KbCase(
                case_id=row["留言编号"].strip(),
                title=row["留言主题"].strip(),
                message=row["留言详情"].strip(),
                reply=" ".join(row["答复意见"].split()),
                department=department_in_reply(row["答复意见"]),
            )
            for row in csv.DictReader(handle)
            if row.get("答复意见", "").strip()
        ]


def lexical_similarity(cases: list[KbCase]) -> LexicalSimilarity:
    """The repeat-report score, its bigram weights taken from the knowledge base's messages."""
    return LexicalSimilarity.fit([case.full_text for case in cases])


class Encoder(Protocol):
    name: str

    def encode(self, texts: list[str]) -> FloatArray:
        """Rows L2-normalised, so a dot product is the cosine."""
        ...


def cached_embeddings(encoder: Encoder, texts: list[str], keys: list[str], cache_dir: Path,
                      prefix: str) -> FloatArray:
    """Embed texts, or load the embeddings cached for the same keys and encoder (kept across restarts)."""
    digest = hashlib.sha256(encoder.name.encode())
    for key in keys:
        digest.update(key.encode())
    cache = cache_dir / f"{prefix}-{digest.hexdigest()[:16]}.npy"
    if cache.exists():
        loaded = _load_cache(cache, len(texts))
        if loaded is not None:
            return loaded
    embeddings = encoder.encode(texts).astype(np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _save_atomically(cache, embeddings)
    return embeddings


def _load_cache(cache: Path, rows: int) -> FloatArray | None:
    """The cached embeddings, or None (logged) for a damaged cache, which is then rebuilt."""
    try:
        loaded: FloatArray = np.load(cache, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        log.warning("embedding_cache_unreadable", path=str(cache), error=f"{type(error).__name__}: {error}")
        return None
    if loaded.ndim != 2 or len(loaded) != rows:
        log.warning("embedding_cache_unreadable", path=str(cache), error=f"shape {loaded.shape}, {rows} rows expected")
        return None
    return loaded


def _save_atomically(cache: Path, embeddings: FloatArray) -> None:
    """Written whole under a temporary name, then renamed: a reader never sees half a file."""
    handle, temporary = tempfile.mkstemp(dir=cache.parent, prefix=f".{cache.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as file:
            np.save(file, embeddings)
        os.replace(temporary, cache)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class KnowledgeIndex:
    def __init__(self, cases: list[KbCase], embeddings: FloatArray) -> None:
        if len(cases) != len(embeddings):
            raise ValueError(f"{len(cases)} cases but {len(embeddings)} embeddings")
        self.cases = cases
        self.embeddings = embeddings

    @classmethod
    def build(cls, cases: list[KbCase], encoder: Encoder, cache_dir: Path) -> KnowledgeIndex:
        keys = [f"{c.case_id}\0{c.search_text}" for c in cases]
        return cls(cases, cached_embeddings(encoder, [c.search_text for c in cases], keys, cache_dir, "kb-index"))

    def search(self, query: FloatArray, k: int = 3) -> list[tuple[KbCase, float]]:
        scores = self.embeddings @ query
        best = np.argsort(-scores)[:k]
        return [(self.cases[int(i)], float(scores[int(i)])) for i in best]
