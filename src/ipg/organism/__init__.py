"""The model organism: a tiny Qwen2 trained here on synthetic arithmetic chains of thought.

`traces` generates the problems and traces, `tokenizer` builds the digit-level tokenizer,
`train` trains and selects a checkpoint, `evaluate` measures held-out accuracy and length.
"""
