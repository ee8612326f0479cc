"""The organism tokenizer: exact round trip, one token per digit, AutoTokenizer rebuilds it."""
from itertools import islice

from transformers import AutoTokenizer, Qwen2Config

from ipg.organism.tokenizer import build_tokenizer
from ipg.organism.traces import TraceConfig, trace_stream


def test_round_trip_and_digit_tokens() -> None:
    tok = build_tokenizer()
    for q, c in islice(trace_stream(0, TraceConfig(max_operand=99)), 100):
        ids = tok(q + c)["input_ids"]
        assert tok.decode(ids) == q + c
        # the question and the completion tokenize the same apart as together (training = sampling)
        assert tok(q)["input_ids"] + tok(c)["input_ids"] == ids
    toks = tok.convert_ids_to_tokens(tok("Q 12+7; 12+7=19; check 12+7=19 ok; ans 19")["input_ids"])
    assert toks[:6] == ["Q", "Ġ", "1", "2", "+", "7"]
    assert {"Ġcheck", "Ġok", "Ġans"} <= set(toks) and "19" not in toks
    assert len(tok) < 64


def test_auto_tokenizer_rebuilds_it_next_to_a_qwen2_config(tmp_path) -> None:
    tok = build_tokenizer()
    tok.save_pretrained(tmp_path)
    Qwen2Config(vocab_size=len(tok)).save_pretrained(tmp_path)
    auto = AutoTokenizer.from_pretrained(tmp_path)
    assert (auto.eos_token, auto.pad_token, auto.padding_side) == ("<eos>", "<pad>", "left")
    s = "Q 1+2+3; 1+2=3; 3+3=6; check 1+2=3 ok; ans 6"
    assert auto(s)["input_ids"] == tok(s)["input_ids"]
    assert auto.decode(auto(s)["input_ids"] + [auto.eos_token_id], skip_special_tokens=True) == s
    enc = auto(["Q 1+2; ", "Q 10+20+3; "], padding=True)
    assert enc["input_ids"][0][0] == auto.pad_token_id and enc["attention_mask"][0][0] == 0
