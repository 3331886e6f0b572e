"""Tiny models for the real-vLLM tests, made here in seconds: never downloaded from a model hub.

Each model has the real architecture of a catalogued family (the same `architectures`, config keys, special
tokens and chat template shape) scaled down, with random weights (seed 0) and a tokenizer trained here on text
this module writes itself. Random weights answer garbage, so the tests can only assert what does not depend on
the weights: the server starts with the planner's argv, lists the served name, counts tokens, takes a prompt
near its max model length, returns embeddings; and completion and tool calling FAIL with the checker's diagnosis.

    python scripts/test_servers/tiny_models.py build CACHE_DIR [KIND...]   # under CACHE_DIR/<kind>; all by default

Run it with the vLLM venv's Python (scripts/test_servers/vllm_cpu.py does): it has torch, transformers and
tokenizers, which the project's own venv does not. Imports of those happen inside the builders, so the project's
venv can import this module for its names and paths.

The kinds:
  llama3-chat    LlamaForCausalLM like meta-llama/Llama-3.1-8B-Instruct: byte-level BPE with Llama 3's special
                 tokens (<|begin_of_text|>, <|start_header_id|>, <|eot_id|>, <|python_tag|>, ...), llama3 rope
                 scaling, max_position_embeddings 131072, bfloat16, and a chat template that puts tools in the
                 first user message and renders tool calls as {"name": ..., "parameters": ...}: the shape of
                 vLLM's examples/tool_chat_template_llama3.1_json.jinja, which the llama3_json tool parser reads.
  xlm-roberta-embedding
                 XLMRobertaModel like BAAI/bge-m3: a Unigram tokenizer with XLM-R's special tokens (<s>=0, <pad>=1,
                 </s>=2, <unk>=3, <mask> last), position ids offset by pad+1 (max_position_embeddings 8194),
                 position_embedding_type absolute (vLLM's RoBERTa loader needs the key), float32 like bge-m3.
  whisper        WhisperForConditionalGeneration like openai/whisper-large-v3: byte-level BPE with Whisper's
                 special tokens (<|endoftext|>, <|startoftranscript|>, a token per language, <|transcribe|>,
                 <|translate|>, <|notimestamps|>), 128 mel bins, a WhisperFeatureExtractor (30 s at 16 kHz);
                 the special tokens' (tied) embeddings are zero, so greedy decoding always writes some text.

Sizes: every attention head is 32 wide (vLLM's CPU attention kernel refuses 16); hidden 64, 2 layers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

SEED = 0
HEAD_DIM = 32  # vLLM's CPU attention kernel supports head sizes 32, 64, 80, 96, 112, 128, 256; not 16
HIDDEN = 64  # 2 heads of 32
LAYERS = 2
BUILD_VERSION = 4  # bump when a builder changes what it writes: cached models are rebuilt

# ------------------------------------------------------------------------------------------------ the corpus
# The tokenizers are trained on text written here, so that the vocabulary covers what the tests send: the
# endpoint checker's prompts (English, JSON tool definitions, the filler sentence) and some code-like text.
CHECKER_TEXT = (
    "What is 2 + 2? Reply with just the number. What is the weather in San Francisco? "
    "The quick brown fox jumps over the lazy dog. Summarize the above text in one sentence. "
    "Kindo verifies this endpoint. The quick brown fox jumps over the lazy dog, twice, before Kindo indexes it. "
    '{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather for a '
    'location", "parameters": {"type": "object", "properties": {"location": {"type": "string", "description": '
    '"City name"}}, "required": ["location"]}}} {"name": "get_weather", "parameters": {"location": "Paris"}} '
    "You are a helpful assistant with tool calling capabilities. Given the following functions, please respond "
    "with a JSON for a function call with its proper arguments that best answers the given prompt. "
)
WORDS = ("model server token weather city answer number question request response function tool call "
         "search index document text vector embedding context length prompt system user assistant "
         "one two three four five six seven eight nine ten hundred thousand the a an of to in on for with is are "
         "was be it this that and or not but if then else return true false null value name type object string "
         "Paris London Tokyo Berlin Madrid Rome Lisbon Oslo Cairo Lima Quito Bogota Denver Boston Seattle").split()


def corpus(lines: int = 4000) -> Iterator[str]:
    """Deterministic training text: the checker's prompts, then pseudo-random sentences of common words."""
    yield CHECKER_TEXT
    state = 12345
    for i in range(lines):
        words = []
        for _ in range(8 + i % 9):
            state = (state * 1103515245 + 12345) % 2**31  # an LCG: the same text on every machine and Python
            words.append(WORDS[state % len(WORDS)])
        punct = ".?!,;:"[i % 6]
        yield " ".join(words).capitalize() + f"{punct} {i} + {i % 7} = {i + i % 7}. {{\"k{i % 13}\": [{i}, \"v\"]}}\n"


# ------------------------------------------------------------------------------------------------ helpers


def _seeded() -> Any:
    import torch

    torch.manual_seed(SEED)
    return torch


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _byte_level_bpe(special: list[str], vocab_size: int) -> Any:
    """A GPT-2-style byte-level BPE (Llama 3's and Whisper's kind) trained on `corpus()`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer=trainer)
    return tok


# ------------------------------------------------------------------------------------------------ llama 3

# Llama 3's special tokens that the chat template and vLLM's llama3_json tool parser use (<|python_tag|>).
LLAMA3_SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                  "<|eot_id|>", "<|eom_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>"]

# The shape of vLLM's examples/tool_chat_template_llama3.1_json.jinja (written here, not copied): the tools go into
# the first user message as JSON with the instruction to answer {"name": ..., "parameters": ...}; an assistant
# tool call is rendered the same way; a tool result is an `ipython` message {"output": ...}.
LLAMA3_TOOL_TEMPLATE = r"""{{- bos_token }}
{%- if not tools is defined %}{%- set tools = none %}{%- endif %}
{%- if messages[0]['role'] == 'system' %}
  {%- set system_message = messages[0]['content'] if messages[0]['content'] is string else messages[0]['content'][0]['text'] %}
  {%- set messages = messages[1:] %}
{%- elif tools is not none %}
  {%- set system_message = "You are a helpful assistant with tool calling capabilities." %}
{%- else %}
  {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}{{- "Environment: ipython\n" }}{%- endif %}
{{- system_message | trim }}{{- "<|eot_id|>" }}
{%- if tools is not none %}
  {%- if messages | length == 0 %}{{- raise_exception("Tools need a first user message to go into.") }}{%- endif %}
  {%- set first = messages[0]['content'] if messages[0]['content'] is string else messages[0]['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('\n') %}
  {%- set messages = messages[1:] %}
  {{- "<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\n" }}
  {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. Do not use variables.\n\n' }}
  {%- for t in tools %}{{- t | tojson(indent=4) }}{{- "\n\n" }}{%- endfor %}
  {{- first | trim }}{{- "<|eot_id|>" }}
{%- endif %}
{%- for message in messages %}
  {%- if message.role in ('tool', 'ipython') %}
    {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
    {%- if message.content is string %}{{- {"output": message.content} | tojson }}
    {%- else %}{%- for c in message.content %}{%- if c.type == 'text' %}{{- {"output": c.text} | tojson }}{%- endif %}{%- endfor %}
    {%- endif %}
    {{- "<|eot_id|>" }}
  {%- elif message.tool_calls is defined and message.tool_calls %}
    {%- if message.tool_calls | length > 1 %}{{- raise_exception("One tool call at a time.") }}{%- endif %}
    {%- set call = message.tool_calls[0].function %}
    {{- "<|start_header_id|>assistant<|end_header_id|>\n\n" }}
    {{- '{"name": "' + call.name | trim + '", "parameters": ' }}
    {%- if call.arguments is string %}{{- call.arguments }}{%- else %}{{- call.arguments | tojson }}{%- endif %}
    {{- "}<|eot_id|>" }}
  {%- else %}
    {{- "<|start_header_id|>" + message.role + "<|end_header_id|>\n\n" }}
    {%- if message.content is string %}{{- message.content | trim }}
    {%- else %}{%- for c in message.content %}{%- if c.type == 'text' %}{{- c.text | trim }}{%- endif %}{%- endfor %}
    {%- endif %}
    {{- "<|eot_id|>" }}
  {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- "<|start_header_id|>assistant<|end_header_id|>\n\n" }}{%- endif %}
"""


def build_llama3_chat(dest: Path) -> None:
    """meta-llama/Llama-3.1-8B-Instruct's architecture, scaled down (its config.json's keys, our sizes)."""
    from tokenizers import processors
    from transformers import LlamaConfig, LlamaForCausalLM

    torch = _seeded()
    tok = _byte_level_bpe(LLAMA3_SPECIAL, vocab_size=3000)
    bos, eos, eot, eom = (tok.token_to_id(t) for t in
                          ("<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|eom_id|>"))
    # Llama 3 adds <|begin_of_text|> in front of every encoding (its tokenizer.json's TemplateProcessing).
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                       pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                                       special_tokens=[("<|begin_of_text|>", bos)])
    dest.mkdir(parents=True)
    tok.save(str(dest / "tokenizer.json"))
    _write_json(dest / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
        "clean_up_tokenization_spaces": True, "model_max_length": 131072,
        "model_input_names": ["input_ids", "attention_mask"], "chat_template": LLAMA3_TOOL_TEMPLATE})
    _write_json(dest / "special_tokens_map.json", {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"})
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=HIDDEN, intermediate_size=4 * HIDDEN,
        num_hidden_layers=LAYERS, num_attention_heads=HIDDEN // HEAD_DIM, num_key_value_heads=1, head_dim=HEAD_DIM,
        hidden_act="silu", max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        bos_token_id=bos, eos_token_id=[eos, eom, eot], attention_bias=False, mlp_bias=False,
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(str(dest), safe_serialization=True)
    _write_json(dest / "generation_config.json", {"bos_token_id": bos, "eos_token_id": [eos, eom, eot],
                                                  "do_sample": True, "temperature": 0.6, "top_p": 0.9})


# ------------------------------------------------------------------------------------------------ xlm-roberta

XLMR_SPECIAL = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0-3 as in XLM-R; <mask> is the last id


def build_xlm_roberta_embedding(dest: Path) -> None:
    """BAAI/bge-m3's architecture (XLMRobertaModel, CLS pooling in vLLM), scaled down."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaConfig, XLMRobertaModel

    torch = _seeded()
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace("  ", " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=3000, special_tokens=XLMR_SPECIAL, unk_token="<unk>",
                                      show_progress=False)
    tok.train_from_iterator(corpus(), trainer=trainer)
    tok.add_special_tokens(["<mask>"])
    cls, sep, pad = tok.token_to_id("<s>"), tok.token_to_id("</s>"), tok.token_to_id("<pad>")
    assert (cls, pad, sep) == (0, 1, 2), (cls, pad, sep)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                       special_tokens=[("<s>", cls), ("</s>", sep)])
    dest.mkdir(parents=True)
    tok.save(str(dest / "tokenizer.json"))
    _write_json(dest / "tokenizer_config.json", {
        "tokenizer_class": "XLMRobertaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
        "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
        "model_max_length": 8192, "clean_up_tokenization_spaces": True})
    config = XLMRobertaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=HIDDEN, num_hidden_layers=LAYERS,
        num_attention_heads=HIDDEN // HEAD_DIM, intermediate_size=4 * HIDDEN, hidden_act="gelu",
        max_position_embeddings=8194, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=pad, bos_token_id=cls,
        eos_token_id=sep,
    )
    model = XLMRobertaModel(config, add_pooling_layer=True).to(torch.float32)
    model.save_pretrained(str(dest), safe_serialization=True)
    # bge-m3's config.json has it; transformers 5 no longer writes it, and vLLM's RoBERTa reads it.
    data = json.loads((dest / "config.json").read_text())
    data["position_embedding_type"] = "absolute"
    _write_json(dest / "config.json", data)


# ------------------------------------------------------------------------------------------------ whisper

# Whisper's language tokens, in its tokenizer's order (transformers' WhisperTokenizer LANGUAGES keys).
WHISPER_LANGUAGES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg lt la mi "
    "ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so af oc ka be tg sd "
    "gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su yue").split()


def whisper_special() -> list[str]:
    return (["<|endoftext|>", "<|startoftranscript|>"] + [f"<|{code}|>" for code in WHISPER_LANGUAGES]
            + ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
               "<|notimestamps|>"])


def build_whisper(dest: Path) -> None:
    """openai/whisper-large-v3's architecture (128 mel bins), scaled down, with its feature extractor."""
    from transformers import (PreTrainedTokenizerFast, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration)

    torch = _seeded()
    special = whisper_special()
    tok = _byte_level_bpe(special, vocab_size=3000)
    ids = {t: tok.token_to_id(t) for t in special}
    dest.mkdir(parents=True)
    tok.save(str(dest / "tokenizer.json"))
    fast = PreTrainedTokenizerFast(tokenizer_file=str(dest / "tokenizer.json"), bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", unk_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   model_max_length=448)
    fast.save_pretrained(str(dest))
    WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30,
                            n_fft=400).save_pretrained(str(dest))
    # transformers' AutoProcessor finds WhisperProcessor through the config's model_type; the tokenizer class
    # stays the generic fast one (WhisperTokenizer would need vocab.json + merges.txt of GPT-2's format).
    sot = ids["<|startoftranscript|>"]
    eot = ids["<|endoftext|>"]
    config = WhisperConfig(
        vocab_size=tok.get_vocab_size(), num_mel_bins=128, d_model=HIDDEN, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=HIDDEN // HEAD_DIM, decoder_attention_heads=HIDDEN // HEAD_DIM,
        encoder_ffn_dim=4 * HIDDEN, decoder_ffn_dim=4 * HIDDEN, max_source_positions=1500,
        max_target_positions=448, pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
        decoder_start_token_id=sot, begin_suppress_tokens=[220, eot], suppress_tokens=[],
    )
    model = WhisperForConditionalGeneration(config).to(torch.float32)
    with torch.no_grad():
        # The output projection is tied to these embeddings: zero rows give special tokens a logit of 0, below the
        # best of ~2,900 random text logits, so greedy decoding always writes text (random weights could otherwise
        # end at once with <|endoftext|>, an empty transcript, and the test would depend on luck).
        model.model.decoder.embed_tokens.weight[list(ids.values())] = 0.0
    model.save_pretrained(str(dest), safe_serialization=True)
    _write_json(dest / "generation_config.json", {"decoder_start_token_id": sot, "eos_token_id": eot,
                                                  "pad_token_id": eot, "bos_token_id": eot,
                                                  "no_timestamps_token_id": ids["<|notimestamps|>"]})


# ------------------------------------------------------------------------------------------------ cache

BUILDERS: dict[str, Callable[[Path], None]] = {
    "llama3-chat": build_llama3_chat,
    "xlm-roberta-embedding": build_xlm_roberta_embedding,
    "whisper": build_whisper,
}


def fingerprint() -> str:
    """Changes when this file changes: a cached model made by another version of it is rebuilt."""
    return hashlib.sha256(Path(__file__).read_bytes() + str(BUILD_VERSION).encode()).hexdigest()[:16]


def ensure(kind: str, cache_dir: Path) -> Path:
    """The model directory of `kind` under cache_dir, built if missing or stale (atomic: built aside, renamed)."""
    if kind not in BUILDERS:
        raise ValueError(f"unknown tiny model kind {kind!r}: choose one of {', '.join(BUILDERS)}")
    dest = cache_dir / kind
    stamp = dest / ".tiny-model"
    if stamp.exists() and stamp.read_text().strip() == fingerprint():
        return dest
    tmp = cache_dir / f".{kind}.building"
    shutil.rmtree(tmp, ignore_errors=True)
    start = time.monotonic()
    BUILDERS[kind](tmp)
    (tmp / ".tiny-model").write_text(fingerprint() + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    print(f"[tiny-models] built {kind} in {time.monotonic() - start:.1f}s at {dest}", file=sys.stderr, flush=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    build = sub.add_parser("build", help="build each kind into CACHE_DIR/<kind> if missing or stale (all by default); "
                                         "prints {kind: directory} as JSON")
    build.add_argument("cache_dir", type=Path)
    build.add_argument("kinds", nargs="*", metavar="KIND", help=", ".join(BUILDERS))
    args = parser.parse_args(argv)
    unknown = [kind for kind in args.kinds if kind not in BUILDERS]
    if unknown:
        parser.error(f"unknown kind {unknown[0]!r}: choose from {', '.join(BUILDERS)}")
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: str(ensure(kind, args.cache_dir.resolve())) for kind in args.kinds or BUILDERS}
    print(json.dumps(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
