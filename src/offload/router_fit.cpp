#include "offload/router_fit.h"

#include <cmath>

#include "core/error.h"

namespace mcmoe::offload {

RouterFit::RouterFit(int n_in, int n_out, std::vector<float> prior, int refit_every,
                     double lambda_share)
    : n_in_(n_in),
      n_out_(n_out),
      refit_every_(refit_every),
      lambda_share_(lambda_share),
      a_(static_cast<size_t>(n_in + 1) * (n_in + 1), 0.0),
      b_(static_cast<size_t>(n_in + 1) * n_out, 0.0),
      prior_(std::move(prior)),
      w_(prior_) {
  if (n_in < 1 || n_out < 1 || refit_every < 1 || !(lambda_share > 0)) {
    fail("RouterFit: {} inputs, {} outputs, refit every {}, lambda share {}", n_in, n_out,
         refit_every, lambda_share);
  }
  if (prior_.size() != static_cast<size_t>(n_out) * (n_in + 1)) {
    fail("RouterFit: prior of {} values for {} x {}", prior_.size(), n_out, n_in + 1);
  }
}

void RouterFit::add_input(const float* x) {
  queue_.insert(queue_.end(), x, x + n_in_);
}

void RouterFit::add_targets(const float* z, int64_t n) {
  if (static_cast<int64_t>(queue_.size()) != n * n_in_) {
    queue_.clear();
    return;
  }
  const int m = n_in_ + 1;
  std::vector<double> x(m);
  for (int64_t r = 0; r < n; ++r) {
    for (int i = 0; i < n_in_; ++i) x[i] = queue_[r * n_in_ + i];
    x[n_in_] = 1.0;
    // Lower triangle of A only; refit() mirrors it.
    for (int i = 0; i < m; ++i) {
      double* row = a_.data() + static_cast<size_t>(i) * m;
      for (int j = 0; j <= i; ++j) row[j] += x[i] * x[j];
      double* bi = b_.data() + static_cast<size_t>(i) * n_out_;
      for (int o = 0; o < n_out_; ++o) bi[o] += x[i] * z[r * n_out_ + o];
    }
  }
  queue_.clear();
  pairs_ += n;
  since_fit_ += n;
  if (since_fit_ >= refit_every_) refit();
}

void RouterFit::refit() {
  since_fit_ = 0;
  const int m = n_in_ + 1;
  // (A + λI) W'^T = B + λ P^T, λ a share of the mean diagonal of A: the fit moves away from
  // the router only as far as the data carry it.
  std::vector<double> l(a_.size());
  double trace = 0;
  for (int i = 0; i < m; ++i) trace += a_[static_cast<size_t>(i) * m + i];
  const double lambda = lambda_share_ * trace / m + 1e-12;
  // Cholesky of the symmetric positive definite A + λI (lower triangle).
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j <= i; ++j) {
      double s = a_[static_cast<size_t>(i) * m + j] + (i == j ? lambda : 0.0);
      for (int k = 0; k < j; ++k)
        s -= l[static_cast<size_t>(i) * m + k] * l[static_cast<size_t>(j) * m + k];
      if (i == j) {
        if (!(s > 0)) return;  // not positive definite in floating point: keep the last map
        l[static_cast<size_t>(i) * m + i] = std::sqrt(s);
      } else {
        l[static_cast<size_t>(i) * m + j] = s / l[static_cast<size_t>(j) * m + j];
      }
    }
  }
  std::vector<double> y(m);
  for (int o = 0; o < n_out_; ++o) {
    for (int i = 0; i < m; ++i) {  // forward: L y = b + λ p
      double s =
          b_[static_cast<size_t>(i) * n_out_ + o] + lambda * prior_[static_cast<size_t>(o) * m + i];
      for (int k = 0; k < i; ++k) s -= l[static_cast<size_t>(i) * m + k] * y[k];
      y[i] = s / l[static_cast<size_t>(i) * m + i];
    }
    for (int i = m - 1; i >= 0; --i) {  // back: L^T w = y
      double s = y[i];
      for (int k = i + 1; k < m; ++k) s -= l[static_cast<size_t>(k) * m + i] * y[k];
      y[i] = s / l[static_cast<size_t>(i) * m + i];
    }
    for (int i = 0; i < m; ++i) w_[static_cast<size_t>(o) * m + i] = static_cast<float>(y[i]);
  }
  fitted_ = true;
}

void RouterFit::apply(const float* x, float* z) const {
  const int m = n_in_ + 1;
  for (int o = 0; o < n_out_; ++o) {
    const float* w = w_.data() + static_cast<size_t>(o) * m;
    float s = w[n_in_];
    for (int i = 0; i < n_in_; ++i) s += w[i] * x[i];
    z[o] = s;
  }
}

}  // namespace mcmoe::offload
