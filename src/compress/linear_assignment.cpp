#include "compress/linear_assignment.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace mcmoe::compress {

std::vector<int> solve_linear_assignment(const std::vector<double>& cost, int n) {
  if (n < 0 || cost.size() != static_cast<size_t>(n) * n) {
    fail("linear assignment: {} costs for a {}x{} matrix", cost.size(), n, n);
  }
  for (size_t i = 0; i < cost.size(); ++i) {
    if (!std::isfinite(cost[i])) fail("linear assignment: cost[{}][{}] is not finite ({})", i / n, i % n, cost[i]);
  }
  // Rows are added one at a time; each addition finds a shortest augmenting path in the
  // reduced costs cost[i][j] - u[i] - v[j] (Dijkstra over columns, O(n²)) and updates the
  // potentials so reduced costs stay non-negative. Index 0 is a virtual column/row.
  constexpr double kInf = std::numeric_limits<double>::infinity();
  std::vector<double> u(n + 1, 0.0), v(n + 1, 0.0), min_to(n + 1);
  std::vector<int> row_of(n + 1, 0), way(n + 1, 0);  // row_of[j]: row matched to column j (1-based)
  std::vector<char> used(n + 1);
  for (int i = 1; i <= n; ++i) {
    row_of[0] = i;
    int j0 = 0;
    std::fill(min_to.begin(), min_to.end(), kInf);
    std::fill(used.begin(), used.end(), 0);
    do {
      used[j0] = 1;
      const int i0 = row_of[j0];
      double delta = kInf;
      int j1 = 0;
      const double* c = cost.data() + static_cast<size_t>(i0 - 1) * n;
      for (int j = 1; j <= n; ++j) {
        if (used[j]) continue;
        const double cur = c[j - 1] - u[i0] - v[j];
        if (cur < min_to[j]) {
          min_to[j] = cur;
          way[j] = j0;
        }
        if (min_to[j] < delta) {
          delta = min_to[j];
          j1 = j;
        }
      }
      for (int j = 0; j <= n; ++j) {
        if (used[j]) {
          u[row_of[j]] += delta;
          v[j] -= delta;
        } else {
          min_to[j] -= delta;
        }
      }
      j0 = j1;
    } while (row_of[j0] != 0);
    do {  // flip the augmenting path
      const int j1 = way[j0];
      row_of[j0] = row_of[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<int> col(n);
  for (int j = 1; j <= n; ++j) col[row_of[j] - 1] = j - 1;
  return col;
}

}  // namespace mcmoe::compress
