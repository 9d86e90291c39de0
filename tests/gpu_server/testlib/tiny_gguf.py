"""A tiny random-weight llama GGUF, so tests and benchmarks run the real llama.cpp in milliseconds.

The model knows nothing; it exists to exercise loading, tokenizing, the chat template, grammar
sampling and the KV cache exactly as a real model would, without shipping or fetching weights.
Needs the `gguf` package, which only tests and benchmarks install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import gguf
import numpy as np
from gguf import TokenType

from gpu_server.llm.templates import CHATML_TEMPLATE

_EMBED: Final = 64
_HEADS: Final = 4
_LAYERS: Final = 2
_FEED_FORWARD: Final = 128
_CONTEXT: Final = 16384


def _vocabulary() -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]
    # Every byte, so any text can be tokenized by byte fallback.
    tokens += [f"<0x{value:02X}>" for value in range(256)]
    types += [TokenType.BYTE] * 256
    # A few normal pieces so tokenizing is not all byte fallback.
    pieces = ["\u2581", *[chr(code) for code in range(0x21, 0x7F)], "\u2581the", "\u2581a"]
    tokens += pieces
    types += [TokenType.NORMAL] * len(pieces)
    tokens += ["<|im_start|>", "<|im_end|>"]
    types += [TokenType.CONTROL, TokenType.CONTROL]
    scores = [
        0.0 if kind != TokenType.NORMAL else -float(len(tok))
        for tok, kind in zip(tokens, types, strict=True)
    ]
    return tokens, scores, [int(kind) for kind in types]


def write_tiny_gguf(path: Path, seed: int = 0) -> Path:
    """Write a ~0.5 MB llama-architecture GGUF with random F32 weights and a ChatML template."""
    tokens, scores, types = _vocabulary()
    vocab = len(tokens)
    rng = np.random.default_rng(seed)

    def weights(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-random-llama")
    writer.add_context_length(_CONTEXT)
    writer.add_embedding_length(_EMBED)
    writer.add_block_count(_LAYERS)
    writer.add_feed_forward_length(_FEED_FORWARD)
    writer.add_head_count(_HEADS)
    writer.add_head_count_kv(_HEADS)
    writer.add_rope_dimension_count(_EMBED // _HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_add_bos_token(False)
    writer.add_add_space_prefix(False)
    writer.add_chat_template(CHATML_TEMPLATE)

    writer.add_tensor("token_embd.weight", weights(vocab, _EMBED))
    writer.add_tensor("output_norm.weight", np.ones(_EMBED, dtype=np.float32))
    writer.add_tensor("output.weight", weights(vocab, _EMBED))
    for layer in range(_LAYERS):
        prefix = f"blk.{layer}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(_EMBED, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{prefix}.{name}.weight", weights(_EMBED, _EMBED))
        writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(_EMBED, dtype=np.float32))
        writer.add_tensor(f"{prefix}.ffn_gate.weight", weights(_FEED_FORWARD, _EMBED))
        writer.add_tensor(f"{prefix}.ffn_up.weight", weights(_FEED_FORWARD, _EMBED))
        writer.add_tensor(f"{prefix}.ffn_down.weight", weights(_EMBED, _FEED_FORWARD))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
