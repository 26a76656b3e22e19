"""The GPT task's presets against the recipes they reproduce."""

from attnlab.config import build_config
from attnlab.tasks.gpt import GPTTaskConfig

# nanoGPT's config/train_shakespeare_char.py (its GPU model), by hand: the values char-gpu must match
NANOGPT_SHAKESPEARE_CHAR = {
    "batch_size": 64, "block_size": 256, "n_layer": 6, "n_head": 6, "n_embd": 384, "dropout": 0.2,
    "learning_rate": 1e-3, "max_iters": 5000, "min_lr": 1e-4, "beta2": 0.99, "warmup_iters": 100,
    "eval_interval": 250, "weight_decay": 0.1, "bias": False,
}


def test_char_gpu_is_nanogpts_shakespeare_char_recipe_with_dropout_on_the_attention_weights_too():
    cfg = build_config(GPTTaskConfig, "char-gpu")
    n, m, t = NANOGPT_SHAKESPEARE_CHAR, cfg.model, cfg.train
    assert (t.batch_size, m.context, m.num_layers, m.num_heads, m.dim) == (
        n["batch_size"], n["block_size"], n["n_layer"], n["n_head"], n["n_embd"])
    assert m.mlp_dim == 4 * n["n_embd"] and m.bias is n["bias"]
    # nanoGPT's one `dropout` is used on the embeddings, the residual branches and the attention
    # weights (its CausalSelfAttention passes dropout_p=self.dropout while training)
    assert m.dropout == m.attn_dropout == n["dropout"]
    assert (t.lr, t.max_steps, t.lr * t.min_lr_ratio, t.beta2, t.warmup_steps, t.eval_every, t.weight_decay) == (
        n["learning_rate"], n["max_iters"], n["min_lr"], n["beta2"], n["warmup_iters"], n["eval_interval"],
        n["weight_decay"])
    assert t.patience is None and t.decay_embeddings  # no early stop; decay on every matrix, the tied embedding too
