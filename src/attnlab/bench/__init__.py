"""Benchmarks run by ``attnlab bench NAME``, one module each (``add_arguments``, ``run``)."""

from attnlab.registry import Registry

BENCHMARKS = Registry("benchmark", "attnlab.bench", {
    "attention": "MultiHeadedAttention vs torch.nn.MultiheadAttention: time and peak memory",
    "gpt": "training tokens/s of DialogueGPT vs Hugging Face GPT-2 of identical size",
    "vit": "training images/s of our ViT vs Hugging Face ViT of identical size",
    "generate": "KV-cache vs uncached generation speed of DialogueGPT (identical tokens checked)",
    "peak": "this CPU's matmul GFLOP/s at the models' shapes and its memory bandwidth (MFU's peak)",
    "translate": "decoding sentences/s of a translation model: greedy with and without the cache, beam 4",
    "bert": "inference tokens/s of attnlab's BERT vs transformers' BertForSequenceClassification, same weights",
    "nanogpt": "a training step of DialogueGPT vs nanoGPT's GPT (same shape and weights), each in its own process",
    "pretrained": "GPT-2 in attnlab vs transformers, same weights: load time, KV-cache generation, a fine-tuning step",
})
