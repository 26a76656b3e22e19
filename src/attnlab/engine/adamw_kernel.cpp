// AdamW's update of float32 tensors on the CPU in one pass, bit for bit torch's own
// (attnlab/engine/adamw_kernel.py).
//
// torch.optim.AdamW's CPU step runs eight element-wise operations over each tensor (mul_, lerp_,
// mul_, addcmul_, sqrt, div, add_, addcdiv_), and each one reads and writes whole tensors: for a
// model of a few million parameters the step passes over tens of megabytes many times. Here every
// element goes through the same operations, in the same order, with the same roundings, in one
// pass over blocks that stay in the cache:
//
//   p = p * (1 - lr * wd)
//   m = lerp(m, g, 1 - beta1)                   torch's lerp: one fused multiply-add
//   v = fma((1 - beta2) * g, g, v * beta2)      torch's addcmul: also fused
//   d = sqrt(v) / sqrt(1 - beta2^t) + eps       torch's sqrt is MKL's vsSqrt where torch has MKL
//   p = p + (-lr / (1 - beta1^t)) * m / d
//
// -ffp-contract=off keeps the compiler from fusing anything else; the scalars arrive as doubles and
// are rounded to float as torch rounds them. The module that loads this checks its result against
// torch's step on this machine, and uses it only where every bit agrees.
#include <ATen/Parallel.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

// MKL's vector square root, which torch's sqrt calls where torch is built with MKL (resolved from
// libtorch_cpu when this library loads; null where it is not there).
extern "C" void vsSqrt(const int n, const float* a, float* r) __attribute__((weak));

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CLONES __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#else
#define CLONES
#endif

namespace {

constexpr int64_t BLOCK = 16384;  // elements per pass of the three loops below (64 KiB per tensor)
constexpr int64_t GRAIN = 32768;  // elements per thread at least, as torch's element-wise kernels

struct Scalars {
  float decay, weight, beta2, value, bc2_sqrt, eps, step_size;
  bool small;  // torch's lerp takes the other form for weights of 0.5 or more
};

CLONES void moments(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
                    int64_t n, Scalars s) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i], mi = m[i];
    p[i] = p[i] * s.decay;
    m[i] = s.small ? std::fma(s.weight, gi - mi, mi) : std::fma(s.weight - 1.0f, gi - mi, gi);
    v[i] = std::fma(s.value * gi, gi, v[i] * s.beta2);
  }
}

CLONES void square_root(const float* __restrict v, float* __restrict r, int64_t n) {
  for (int64_t i = 0; i < n; ++i) r[i] = std::sqrt(v[i]);
}

CLONES void update(float* __restrict p, const float* __restrict m, const float* __restrict r, int64_t n, Scalars s) {
  for (int64_t i = 0; i < n; ++i) {
    const float d = r[i] / s.bc2_sqrt + s.eps;
    p[i] = p[i] + s.step_size * m[i] / d;
  }
}

// Elements [0, n) of one tensor whose gradient is g.
void run(float* p, const float* g, float* m, float* v, int64_t n, const Scalars& s) {
  float r[BLOCK];
  for (int64_t b = 0; b < n; b += BLOCK) {
    const int64_t k = std::min(BLOCK, n - b);
    moments(p + b, g + b, m + b, v + b, k, s);
    if (vsSqrt != nullptr) {
      vsSqrt(static_cast<int>(k), v + b, r);
    } else {
      square_root(v + b, r, k);
    }
    update(p + b, m + b, r, k, s);
  }
}

float* at_address(uintptr_t address) { return reinterpret_cast<float*>(address); }

// One AdamW step of a tensor of sum(sizes) floats at `param` (moments at `exp_avg` and
// `exp_avg_sq`), whose gradient lies in pieces: sizes[i] floats at grads[i], in order.
void step(uintptr_t param, uintptr_t exp_avg, uintptr_t exp_avg_sq, const std::vector<uintptr_t>& grads,
          const std::vector<int64_t>& sizes, double decay, double weight, double beta2, double value,
          double bc2_sqrt, double eps, double step_size) {
  const float w = static_cast<float>(weight);
  const Scalars s{static_cast<float>(decay), w, static_cast<float>(beta2), static_cast<float>(value),
                  static_cast<float>(bc2_sqrt), static_cast<float>(eps), static_cast<float>(step_size),
                  std::abs(w) < 0.5f};
  std::vector<int64_t> starts(sizes.size() + 1, 0);  // where each piece starts in the tensor
  for (size_t i = 0; i < sizes.size(); ++i) starts[i + 1] = starts[i] + sizes[i];
  float *p = at_address(param), *m = at_address(exp_avg), *v = at_address(exp_avg_sq);
  at::parallel_for(0, starts.back(), GRAIN, [&](int64_t begin, int64_t end) {
    for (size_t i = 0; i < sizes.size(); ++i) {  // the pieces that overlap [begin, end)
      const int64_t lo = std::max(begin, starts[i]), hi = std::min(end, starts[i + 1]);
      if (lo < hi) run(p + lo, at_address(grads[i]) + (lo - starts[i]), m + lo, v + lo, hi - lo, s);
    }
  });
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.def("step", &step, "One AdamW step of a float32 tensor, in place (attnlab/engine/adamw_kernel.py)");
  module.def("mkl_sqrt", []() { return vsSqrt != nullptr; }, "Whether the square root is MKL's vsSqrt");
}
