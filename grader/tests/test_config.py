"""The given configuration, solutions/config.py (copied verbatim into exercises/)."""

import dataclasses

import pytest

from solutions.config import GPTConfig


def test_defaults_are_gpt2_small_and_resolve_the_derived_fields():
    c = GPTConfig()
    assert (c.vocab_size, c.block_size, c.n_layer, c.n_head, c.n_embd) == (50257, 1024, 12, 12, 768)
    assert c.n_kv_head == 12 and c.mlp_hidden == 4 * 768 and c.head_dim == 64


@pytest.mark.parametrize("size, shape", [("124M", (12, 12, 768)), ("350M", (24, 16, 1024)),
                                         ("774M", (36, 20, 1280)), ("1558M", (48, 25, 1600))])
def test_gpt2_preset_sizes(size, shape):
    c = GPTConfig.gpt2(size)
    assert (c.n_layer, c.n_head, c.n_embd) == shape
    assert (c.norm, c.pos_emb, c.mlp, c.bias, c.tie_embeddings, c.logit_softcap) == (
        "layernorm", "learned", "gelu", True, True, None)


def test_gpt2_preset_takes_overrides():
    c = GPTConfig.gpt2("124M", n_layer=2, dropout=0.1)
    assert c.n_layer == 2 and c.dropout == 0.1 and c.n_embd == 768


def test_gpt2_preset_rejects_an_unknown_size():
    with pytest.raises(ValueError, match="sizes"):
        GPTConfig.gpt2("7B")


def test_modern_preset_derives_width_and_heads_from_depth():
    c = GPTConfig.modern(4)
    assert (c.n_layer, c.n_embd, c.n_head, c.n_kv_head, c.head_dim) == (4, 256, 4, 4, 64)
    assert (c.norm, c.norm_eps, c.pos_emb, c.qk_norm, c.mlp, c.bias, c.tie_embeddings, c.logit_softcap) == (
        "rmsnorm", 1e-6, "rope", True, "relu2", False, False, 15.0)


def test_modern_preset_applies_overrides_before_deriving():
    c = GPTConfig.modern(4, n_embd=512)
    assert (c.n_embd, c.n_head, c.n_kv_head) == (512, 8, 8)
    c = GPTConfig.modern(4, n_kv_head=2, vocab_size=65)
    assert (c.n_head, c.n_kv_head, c.vocab_size) == (4, 2, 65)


@pytest.mark.parametrize("fields, words", [
    (dict(n_embd=30, n_head=4), "divisible by n_head"),
    (dict(n_head=4, n_kv_head=3), "divisible by n_kv_head"),
    (dict(n_embd=12, n_head=4, pos_emb="rope"), "even"),
    (dict(norm="batchnorm"), "norm must be one of"),
    (dict(pos_emb="alibi"), "pos_emb must be one of"),
    (dict(mlp="geglu"), "mlp must be one of"),
    (dict(n_layer=0), "positive integer"),
    (dict(logit_softcap=0.0), "logit_softcap"),
    (dict(dropout=1.0), "dropout"),
])
def test_invalid_combinations_raise_a_sentence_saying_what_to_change(fields, words):
    with pytest.raises(ValueError, match=words) as info:
        GPTConfig(**fields)
    assert str(info.value).endswith(".")


def test_it_is_a_plain_dataclass():
    c = GPTConfig(n_layer=2)
    assert dataclasses.asdict(c)["n_layer"] == 2
    assert GPTConfig(**dataclasses.asdict(c)) == c
