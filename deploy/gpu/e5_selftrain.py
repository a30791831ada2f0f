"""GPU, second round: seed spread of the full fine-tune, and self-training on raw unlabelled messages.

Rule fixed before running: the self-trained student is adopted only if its validation macro-F1 is at least
the teacher's minus 0.01 (validation rows are tokenized text, so they cannot show a raw-text gain; the raw
rows are reported, not used to choose).
"""
import os, sys
src = open("deploy/gpu/e5_finetune.py").read().split("# ---- full fine-tune")[0]
exec(compile(src, "ft", "exec"))
DATA["un"] = split("un")
if QUICK: DATA["un"] = ([s[:48] for s in DATA["un"][0][:64]], DATA["un"][1][:64])
THRESH = float(os.environ.get("THRESH", 0.9))

def full_ft(seed, epochs=EP_FULL):
    torch.manual_seed(seed); m = Classifier(new_bert())
    for p in m.bert.embeddings.parameters(): p.requires_grad = False
    h = train(m, [{"params": list(m.bert.encoder.parameters()), "lr": 4e-5}, {"params": m.head.parameters(), "lr": 2e-3}], epochs, seed=seed)
    return m, h

def svd_adapter(model, rank=64):
    tuned = {k: v.detach().float().cpu() for k, v in model.bert.state_dict().items()}; lowrank, dense = {}, {}
    for k, v in tuned.items():
        if not k.startswith("encoder."): continue
        d = v - BASE[k]
        if d.ndim == 2:
            U, S, Vh = torch.linalg.svd(d, full_matrices=False); lowrank[k] = (Vh[:rank].numpy(), (U[:, :rank] * S[:rank]).numpy())
        else: dense[k] = d.numpy()
    return lowrank, dense

out = {"seeds": {}}
teacher = None
for seed in (0, 1, 2):
    m, h = full_ft(seed); out["seeds"][seed] = scores(m); print("seed", seed, out["seeds"][seed], flush=True)
    if seed == 0: teacher = m
    else: del m
# pseudo-labels on the raw pool
seqs_un = DATA["un"][0]; ALL = DATA
DATA = dict(DATA); DATA["pool"] = (seqs_un, torch.zeros(len(seqs_un), dtype=torch.long))
probs = torch.softmax(logits_of(teacher, "pool"), 1); conf, lab = probs.max(1)
keep = (conf >= THRESH).nonzero().flatten().tolist()
out["pseudo"] = {"pool": len(seqs_un), "kept": len(keep), "threshold": THRESH,
                 "per_class": {LABELS[c]: int((lab[keep] == c).sum()) for c in range(len(LABELS))}}
print(out["pseudo"], flush=True)
tr_seqs, tr_y = DATA["tr"]
DATA["tr"] = (list(tr_seqs) + [seqs_un[i] for i in keep], torch.cat([tr_y, lab[keep]]))
student, h = full_ft(0)
out["student"] = {"history": h, "final": scores(student)}
out["teacher"] = out["seeds"][0]
adopt = out["student"]["final"]["va"]["macro_f1"] >= out["teacher"]["va"]["macro_f1"] - 0.01
out["adopt_student"] = bool(adopt); print("adopt student:", adopt, flush=True)
for name, model in (("teacher", teacher), ("student", student)):
    lowrank, dense = svd_adapter(model)
    save_adapter(f"{OUT}/e5-{name}-svd64.npz", lowrank, dense, head_arrays(model), {"variant": f"full-{name}-svd64", **out[name if name == "student" else "teacher"]} if name == "teacher" else {"variant": "full-student-svd64", **out["student"]["final"]})
json.dump(out, open(f"{OUT}/ft2_results.json", "w"), indent=1); print(json.dumps({k: v for k, v in out.items() if k != "student"} | {"student": out["student"]["final"]}, indent=1))
