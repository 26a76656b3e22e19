// DecodeStep's one-row path (attnlab/models/gpt_step.py) in C++: the same ATen operations in the
// same order, on the same tensors, so the logits are the same bit for bit (tested). What it saves
// is Python: a step of the default GPT is about 90 tiny calls, and from Python each one pays for
// argument parsing and a tensor object besides the kernel. Built on first use by
// torch.utils.cpp_extension where it can be (attnlab.models.gpt_step_build).
#include <torch/extension.h>

#include <limits>
#include <string>
#include <utility>
#include <vector>

// The model's tensors, handed over once (gpt_step.py's DecodeStep builds one): `weights` holds 12
// tensors per block, in _block's order: norm1 w b, qkv w b, out w b, norm2 w b, fc1 w b, fc2 w b
// (absent biases as zeros, absent LayerNorm weights as ones); `eps` two per block.
struct Step {
  at::Tensor tok, pos, norm_w, norm_b, head;
  std::vector<at::Tensor> weights;
  std::vector<double> eps;
  std::vector<std::string> approximate;
  double norm_eps;
  int64_t heads;

  // One new position of one row: `keys[i]` and `values[i]` are block i's cache buffers
  // (1, H, capacity, hd); position `position` is written into them and positions 0 .. position
  // are attended to. Returns the logits (V,). PyTorch's own kernels, not oneDNN's, as in Python.
  at::Tensor operator()(int64_t token, int64_t position, const std::vector<at::Tensor>& keys,
                        const std::vector<at::Tensor>& values) const {
    const bool onednn = at::globalContext().userEnabledMkldnn();
    at::globalContext().setUserEnabledMkldnn(false);
    struct Restore {
      bool on;
      ~Restore() { at::globalContext().setUserEnabledMkldnn(on); }
    } restore{onednn};
    const int64_t dim = tok.size(1), head_dim = dim / heads;
    const std::vector<int64_t> shape{dim};
    at::Tensor x = tok.select(0, token) + pos.select(0, position);  // (D,)
    for (size_t i = 0; i < keys.size(); ++i) {
      const at::Tensor* w = &weights[12 * i];
      // [q | k | v] of the new position, split per head: 3 x (1, H, 1, hd)
      std::vector<at::Tensor> qkv = at::addmv(w[3], w[2], at::layer_norm(x, shape, w[0], w[1], eps[2 * i]))
                                        .view({1, 3, heads, 1, head_dim})
                                        .unbind(1);
      keys[i].narrow(2, position, 1).copy_(qkv[1]);
      values[i].narrow(2, position, 1).copy_(qkv[2]);
      at::Tensor a = at::scaled_dot_product_attention(qkv[0], keys[i].narrow(2, 0, position + 1),
                                                      values[i].narrow(2, 0, position + 1));  // (1, H, 1, hd)
      x = x + at::addmv(w[5], w[4], a.view({dim}));  // heads concatenated
      at::Tensor h = at::layer_norm(x, shape, w[6], w[7], eps[2 * i + 1]);
      x = x + at::addmv(w[11], w[10], at::gelu(at::addmv(w[9], w[8], h), approximate[i]));
    }
    return at::mv(head, at::layer_norm(x, shape, norm_w, norm_b, norm_eps));  // (V,)
  }

  // The step and the greedy pick in one call, in its own inference mode, as generate() picks in
  // Python (gpt.py's _greedy): the `banned` ids set to -inf, then one max over the row (1, V) in
  // fp32. Returns the id and its logit (NaN where any logit is NaN).
  std::pair<int64_t, double> pick(int64_t token, int64_t position, const std::vector<at::Tensor>& keys,
                                  const std::vector<at::Tensor>& values, const at::Tensor& banned) const {
    c10::InferenceMode guard;
    at::Tensor logits = (*this)(token, position, keys, values).view({1, -1});  // (1, V)
    if (logits.scalar_type() != at::kFloat) logits = logits.to(at::kFloat);
    logits.index_fill_(-1, banned, -std::numeric_limits<double>::infinity());
    auto [top, id] = logits.max(-1);  // (1,) each
    return {id.item<int64_t>(), top.item<double>()};
  }
};

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  // module_local: two builds (two installs) loaded in one process each keep their own type
  pybind11::class_<Step>(m, "Step", pybind11::module_local(), "one-row decoding step of a DialogueGPT")
      .def(pybind11::init<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, std::vector<at::Tensor>,
                          std::vector<double>, std::vector<std::string>, double, int64_t>())
      .def("__call__", &Step::operator())
      .def("pick", &Step::pick);
}
