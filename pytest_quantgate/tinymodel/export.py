"""Write trained tiny-model weights as a GGUF file llama.cpp loads as ``general.architecture = llama``.

Every key llama.cpp needs is written explicitly, including a few it would otherwise default badly: with a
``gpt2`` vocabulary and no BOS/EOS ids it falls back to id 11 (a byte token here), and without a merge list
it refuses the file. ``gguf.GGUFWriter.add_array`` drops an empty list without a word, so the vocabulary
carries one merge that can never fire (see :func:`vocab.dummy_merges`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pytest_quantgate.tinymodel import vocab

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import numpy.typing as npt

    from pytest_quantgate.tinymodel.train import TinyConfig

ARCH = "llama"
MODEL_NAME = "quantgate-tiny"


def write_gguf(
    path: Path,
    config: TinyConfig,
    tensors: dict[str, npt.NDArray[np.float32]],
    *,
    dtype: Literal["f16", "f32"] = "f16",
    name: str = MODEL_NAME,
) -> Path:
    """Write *tensors* (GGUF names, float32) to *path*; matrices in *dtype*, norm vectors always F32.

    Norm weights stay F32 because llama.cpp computes them in F32 anyway and ``llama-quantize`` leaves
    1-D tensors alone, so every quantized file shares the same norms as the F16 one.
    """
    import gguf
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), ARCH)
    writer.add_name(name)
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32))
    writer.add_context_length(config.context_length)
    writer.add_embedding_length(config.n_embd)
    writer.add_block_count(config.n_layer)
    writer.add_feed_forward_length(config.n_ff)
    writer.add_head_count(config.n_head)
    writer.add_head_count_kv(config.n_head)
    writer.add_layer_norm_rms_eps(config.rms_eps)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_rope_freq_base(config.rope_base)
    writer.add_vocab_size(vocab.VOCAB_SIZE)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(vocab.token_strings())
    writer.add_token_types(vocab.token_types())
    writer.add_token_merges(vocab.dummy_merges())
    writer.add_bos_token_id(vocab.EOT_ID)
    writer.add_eos_token_id(vocab.EOT_ID)
    # Training prepends <|endoftext|> to every prompt, so the server must too; it must not append one.
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)

    for tensor_name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype=np.float32)
        if dtype == "f16" and data.ndim >= 2:
            data = data.astype(np.float16)
        writer.add_tensor(tensor_name, data)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
