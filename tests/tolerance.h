// The tolerance policy of docs/tolerance.md, in one place.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

namespace mhac::testing {

// float32 kernels against the float64 reference (docs/tolerance.md).
// Outputs: |got - ref| <= kOutputRelTol * max(1, max|ref|). Worst measured
// over the sweep: 1.8e-6 (bert_base, staged, T=97, S=7; AVX-512 level).
// A float32 dot product of length K drifts ~sqrt(K) * 2^-24 relative
// (768 -> 3.3e-6); the bound is ~10x the worst seen and far below what a
// wrong mask, scale or layout does (1e-2 and up).
constexpr double kOutputRelTol = 2e-5;
// Probabilities lie in [0, 1]; worst measured 3.1e-7.
constexpr double kScoresAbsTol = 5e-6;

struct Comparison {
    double max_abs_error = 0.0;
    double bound = 0.0;
    size_t worst_index = 0;
    double worst_got = 0.0, worst_want = 0.0;
    bool ok() const { return max_abs_error <= bound; }
    std::string describe(const std::string &what) const {
        std::ostringstream s;
        s << what << ": max |error| " << max_abs_error << " > bound " << bound << " at flat index "
          << worst_index << " (got " << worst_got << ", want " << worst_want << ")";
        return s.str();
    }
};

inline Comparison compare(const std::vector<float> &got, const std::vector<double> &want,
                          bool probabilities) {
    Comparison c;
    double scale = 1.0;
    for (double w : want) scale = std::max(scale, std::abs(w));
    c.bound = probabilities ? kScoresAbsTol : kOutputRelTol * scale;
    for (size_t i = 0; i < got.size() && i < want.size(); i++) {
        double e = std::abs(double(got[i]) - want[i]);
        if (!(e <= c.max_abs_error)) {  // also catches NaN
            c.max_abs_error = std::isnan(e) ? INFINITY : e;
            c.worst_index = i;
            c.worst_got = got[i];
            c.worst_want = want[i];
        }
    }
    if (got.size() != want.size()) c.max_abs_error = INFINITY;
    return c;
}

}  // namespace mhac::testing
