// "[2, 3]" for error messages. mhac::shape_to_string lives in the runtime's
// mha.cpp, which drags the Halide glue in; the readers do without it.
#pragma once

#include <string>

#include "mhac/mha.h"

namespace mhac::io::detail {

inline std::string shape_string(const Shape &shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

}  // namespace mhac::io::detail
