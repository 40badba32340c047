"""A tiny random chat model saved to a folder, so the transformers backend can be tested offline.

``build_tiny_chat_model(folder)`` trains a BPE tokenizer on the built-in corpus below, builds a
2-layer GPT-2 (hidden size 32) with fixed-seed random weights and saves both with
``save_pretrained``; ``AutoTokenizer/AutoModelForCausalLM.from_pretrained(folder)`` then work with
``HF_HUB_OFFLINE=1``. It takes well under a second on CPU (after importing torch).

The replies are word salad, but the model is wired so that tests can rely on two things:

* Replies depend on the prompt (weights are large enough, ``initializer_range=0.5``, for the
  prompt to matter).
* Replies end on their own: one hidden dimension is pinned to 1 by the final layer norm and only
  EOS reads it, so EOS always gets a logit of ``_EOS_LOGIT``. Sampled replies then end after about
  5 to 60 tokens and greedy ones after a prompt-dependent 1 to 60; ``max_new_tokens=3`` cuts most
  of them off (``finish_reason == "length"``) and ``max_new_tokens=256`` lets most of them stop.
"""

from __future__ import annotations

import string
from pathlib import Path

__all__ = ["CHAT_TEMPLATE", "SPECIAL_TOKENS", "build_tiny_chat_model"]

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
_EOS_LOGIT = 4.0
_SEED = 1234

_CORPUS = """\
The film was a quiet story about a family living by the sea.
Our team won the match after a long and tense second half.
The new phone has a bright screen, a fast chip and a weak battery.
Stocks fell sharply as the central bank raised interest rates again.
The chef cooked fresh fish with lemon, garlic and green herbs.
A winter storm closed the roads in the north for two days.
The band played old songs to a happy crowd on Friday night.
Scientists found frozen water on a small, cold moon of Saturn.
The hotel room was clean, but the staff were slow and rude.
Voters chose a new mayor for the city on Sunday morning.
Write one short sentence about sport, politics, business or science.
Please answer with a single news headline and nothing else.
This product broke after a week and support never replied to me.
The novel follows two sisters through a hard winter in the mountains.
The game ended in a draw after extra time and penalties.
Prices of bread, milk and eggs rose again this month.
Parliament passed the budget after a heated debate late on Tuesday.
The startup raised 12 million dollars to build cheaper solar panels.
Researchers trained a robot to fold laundry in under 3 minutes.
Fans cheered as the striker scored twice in the final ten minutes.
I loved the acting, yet the plot felt slow and predictable.
The airline cancelled 40 flights because of the pilots' strike.
A rare bird was seen near the lake for the first time in years.
The museum opened a new wing for modern art and photography.
"""


def build_tiny_chat_model(folder: Path, *, chat_template: bool = True) -> Path:
    """Write the tiny model and its tokenizer to ``folder``; without ``chat_template`` the tokenizer has none."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    # Metaspace rather than byte-level: decoded word salad stays valid text (no half UTF-8 bytes).
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    bpe.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=list(string.ascii_letters + string.digits + string.punctuation + "▁"),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS.splitlines(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=512,
        initializer_range=0.5,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # a fixed seed without disturbing the caller's RNG
        torch.manual_seed(_SEED)
        model = GPT2LMHeadModel(config)
    with torch.no_grad():
        final_norm, embeddings = model.transformer.ln_f, model.transformer.wte.weight  # lm_head is tied to wte
        final_norm.weight[0] = 0.0
        final_norm.bias.zero_()
        final_norm.bias[0] = 1.0
        embeddings[:, 0] = 0.0
        embeddings[tokenizer.eos_token_id, 0] = _EOS_LOGIT
    model.save_pretrained(folder)
    return folder
