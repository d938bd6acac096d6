// The tolerance policy of docs/tolerance.md, in one place.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

namespace mhac::testing {

// float32 kernels against the float64 reference.
// Outputs: |got - ref| <= kOutputRelTol * max(1, max|ref|). Worst measured on
// the sweep was ~2e-6 (bert_base, T=S=97); 2e-5 leaves 10x headroom for
// other ISA levels' summation orders without hiding a wrong mask or scale,
// which move outputs by ~1e-1.
constexpr double kOutputRelTol = 2e-5;
// Probabilities lie in [0, 1]; worst measured ~3e-7.
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
