"""Tests for ipg.sae: TopK encode/decode, training on a known sparse dictionary, the
sparsify-format save/load round trip, residual collection and the width check."""

from __future__ import annotations

import json

import pytest
import torch
from sparsify import SparseCoder
from transformers import Qwen2Config, Qwen2ForCausalLM

from ipg.errors import IPGError
from ipg.sae import (
    TopKSAE,
    check_sae_fits,
    collect_residual,
    evaluate_sae,
    load_sae,
    save_sae,
    train_sae,
)


@pytest.fixture(scope="module")
def tiny_qwen2() -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )
    return Qwen2ForCausalLM(cfg).eval()


def sparse_dictionary_data(n: int, d: int, n_dict: int, k_true: int, seed: int) -> torch.Tensor:
    """x = f D + c with k_true active atoms of a random unit-norm dictionary D [n_dict, d]."""
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(n_dict, d, generator=g)
    dictionary /= dictionary.norm(dim=1, keepdim=True)
    idx = torch.rand(n, n_dict, generator=g).argsort(-1)[:, :k_true]  # [n, k_true]
    coef = torch.rand(n, k_true, generator=g) + 0.5
    f = torch.zeros(n, n_dict).scatter(-1, idx, coef)  # [n, n_dict]
    return f @ dictionary + 0.1


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg
    return msg


# -- the autoencoder ---------------------------------------------------------------------------
def test_encode_is_exactly_k_sparse_and_matches_sparsify() -> None:
    torch.manual_seed(1)
    sae = TopKSAE.new(d_in=32, n_latents=64, k=5, layer=0)
    x = torch.randn(3, 7, 32)  # [batch, pos, d_in]
    f = sae.encode(x)  # [batch, pos, n_latents]
    assert f.shape == (3, 7, 64)
    assert ((f != 0).sum(-1) == 5).all()
    # the kept values are the k largest ReLU pre-activations
    assert torch.allclose(f.topk(5, dim=-1).values, sae.pre_acts(x).topk(5, dim=-1).values)
    # forward agrees with sparsify's fused TopK path
    ref = sae.coder(x.reshape(-1, 32)).sae_out.reshape(3, 7, 32)
    assert torch.allclose(sae(x), ref, atol=1e-5)
    assert sae.W_dec.shape == (64, 32)
    assert torch.equal(sae.decode(torch.zeros(64)), sae.b_dec)  # decoder bias included


def test_encode_gradient_is_exact() -> None:
    torch.manual_seed(2)
    sae = TopKSAE.new(d_in=8, n_latents=16, k=3, layer=0).double()
    x = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sae.encode, (x,))


def test_wrong_width_input_is_one_line_error() -> None:
    sae = TopKSAE.new(d_in=8, n_latents=16, k=3, layer=0)
    with pytest.raises(IPGError) as err:
        sae.encode(torch.randn(2, 9))
    assert "width 9" in one_line(err)


# -- training ----------------------------------------------------------------------------------
def test_training_recovers_a_sparse_dictionary() -> None:
    acts = sparse_dictionary_data(n=4000, d=32, n_dict=64, k_true=3, seed=0)
    untrained = TopKSAE.new(32, 128, 4, layer=0)
    untrained.coder.b_dec.data = acts.mean(0)
    fvu_before = evaluate_sae(untrained, acts)["fvu"]
    sae, metrics = train_sae(acts, layer=0, n_latents=128, k=4, epochs=10, seed=0)
    assert fvu_before > 0.5
    assert metrics["fvu"] < 0.3, metrics
    assert 0.0 <= metrics["dead_fraction"] < 0.8
    assert metrics["n_tokens"] == 4000 and metrics["n_eval"] == 400
    assert metrics["train_seconds"] > 0
    assert (sae.layer, sae.d_in, sae.n_latents, sae.k) == (0, 32, 128, 4)


def test_training_is_seeded_and_leaves_global_rng_alone() -> None:
    acts = sparse_dictionary_data(n=200, d=8, n_dict=16, k_true=2, seed=1)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, _ = train_sae(acts, layer=1, n_latents=16, k=2, steps=3, batch_size=64, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    b, _ = train_sae(acts, layer=1, n_latents=16, k=2, steps=3, batch_size=64, seed=7)
    assert torch.equal(a.W_dec, b.W_dec) and torch.equal(a.W_enc, b.W_enc)
    # inputs are rescaled for training and the scale folded back: the SAE is equivariant
    c, _ = train_sae(acts * 100, layer=1, n_latents=16, k=2, steps=3, batch_size=64, seed=7)
    assert torch.allclose(c.W_dec, a.W_dec, atol=1e-4)
    assert torch.allclose(c.b_dec, 100 * a.b_dec, rtol=1e-4, atol=1e-4)
    f_big, f = c.encode(acts[:50] * 100), a.encode(acts[:50])
    assert torch.allclose(f_big, 100 * f, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    "acts, n_latents, k, needle",
    [
        (torch.randn(100), 16, 2, "[n_tokens, d_in]"),
        (torch.randn(100, 8), 16, 17, "k=17"),
        (torch.randn(5, 8), 16, 2, "at least 20"),
    ],
)
def test_train_rejects_bad_input(acts, n_latents, k, needle) -> None:
    with pytest.raises(IPGError) as err:
        train_sae(acts, layer=0, n_latents=n_latents, k=k)
    assert needle in one_line(err)


# -- save / load -------------------------------------------------------------------------------
def test_save_load_round_trip_is_exact(tmp_path) -> None:
    acts = sparse_dictionary_data(n=200, d=8, n_dict=16, k_true=2, seed=3)
    sae, metrics = train_sae(acts, layer=1, n_latents=16, k=2, steps=3, batch_size=64)
    out = tmp_path / "sae" / "L1"
    save_sae(sae, out)
    save_sae(sae, out)  # overwriting is atomic and leaves no temp folders behind
    assert sorted(p.name for p in out.parent.iterdir()) == ["L1"]
    assert sorted(p.name for p in out.iterdir()) == ["cfg.json", "metrics.json", "sae.safetensors"]
    loaded = load_sae(out)
    assert loaded.layer == 1 and loaded.k == 2 and loaded.n_latents == 16
    for (name, p), (name2, q) in zip(sae.state_dict().items(), loaded.state_dict().items()):
        assert name == name2 and torch.equal(p, q)
    assert loaded.metrics["fvu"] == metrics["fvu"]
    assert torch.equal(loaded.encode(acts), sae.encode(acts))
    # sparsify's own loader reads the same folder (published-SAE format)
    ref = SparseCoder.load_from_disk(out)
    assert torch.equal(ref.W_dec, sae.W_dec) and ref.cfg.k == 2


def test_load_takes_layer_from_hookpoint_folder_name(tmp_path) -> None:
    sae = TopKSAE.new(8, 16, 2, layer=3)
    out = save_sae(sae, tmp_path / "layers.3")
    cfg = json.loads((out / "cfg.json").read_text())
    del cfg["layer"]  # as in EleutherAI's published SAEs
    (out / "cfg.json").write_text(json.dumps(cfg))
    assert load_sae(out).layer == 3
    assert load_sae(out / "sae.safetensors", layer=3).layer == 3


def test_load_errors_are_one_line(tmp_path) -> None:
    with pytest.raises(IPGError) as err:
        load_sae(tmp_path / "missing")
    assert "cfg.json" in one_line(err)
    out = save_sae(TopKSAE.new(8, 16, 2, layer=0), tmp_path / "x")
    with pytest.raises(IPGError) as err:
        load_sae(out, layer=1)
    assert "layer 0" in one_line(err)
    (out / "sae.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(IPGError) as err:
        load_sae(out)
    assert "sae.safetensors" in one_line(err)


def test_check_sae_fits_names_file_and_widths(tmp_path, tiny_qwen2) -> None:
    check_sae_fits(TopKSAE.new(32, 64, 4, layer=1), tiny_qwen2)  # fits: no error
    out = save_sae(TopKSAE.new(16, 64, 4, layer=0), tmp_path / "narrow")
    with pytest.raises(IPGError) as err:
        check_sae_fits(load_sae(out), tiny_qwen2)
    msg = one_line(err)
    assert str(out / "sae.safetensors") in msg and "d_in=16" in msg and "32" in msg
    with pytest.raises(IPGError) as err:
        check_sae_fits(TopKSAE.new(32, 64, 4, layer=5), tiny_qwen2)
    assert "2 layers" in one_line(err)


# -- residual collection -----------------------------------------------------------------------
def test_collect_residual_matches_hidden_states(tiny_qwen2) -> None:
    ids = torch.randint(0, 64, (3, 6))  # [batch, pos]
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4])  # right padding
    hs = tiny_qwen2(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    batches = [(ids[:2], mask[:2]), {"input_ids": ids[2:], "attention_mask": mask[2:]}]
    acts = collect_residual(tiny_qwen2, batches, layer=0)
    assert acts.shape == (12, 32) and acts.dtype == torch.float32
    assert torch.allclose(acts, hs[1][mask.bool()], atol=1e-6)
    # last layer: HF normalises hidden_states[-1], so compare with the final norm's input
    seen = []
    handle = tiny_qwen2.model.norm.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    tiny_qwen2(input_ids=ids, attention_mask=mask)
    handle.remove()
    assert torch.allclose(collect_residual(tiny_qwen2, [(ids, mask)], 1), seen[0][mask.bool()])
    # a bare LongTensor batch means no padding
    assert collect_residual(tiny_qwen2, [ids], 0).shape == (18, 32)


def test_collect_residual_left_padding_and_early_stop(tiny_qwen2) -> None:
    ids = torch.randint(0, 64, (2, 5))
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])  # left padding, as in generation
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    hs = tiny_qwen2(
        input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True
    ).hidden_states
    called = []
    handle = tiny_qwen2.lm_head.register_forward_hook(lambda *a: called.append(1))
    acts = collect_residual(tiny_qwen2, [(ids, mask)] * 3, layer=0, max_tokens=10)
    handle.remove()
    assert not called  # the forward stops after the wanted layer
    assert acts.shape == (10, 32)
    assert torch.allclose(acts[:8], hs[1][mask.bool()], atol=1e-6)
    with pytest.raises(IPGError) as err:
        collect_residual(tiny_qwen2, [ids], layer=2)
    assert "2 layers" in one_line(err)
