// x86 ISA levels of the multi-target kernels: forcing one (MHAC_ISA, for
// tests and for users who must pin behaviour) and reporting which one ran.
#pragma once

#include <string>

namespace mhac::detail {

// Reads MHAC_ISA (avx512 | avx2 | sse41 | auto) once and, unless auto,
// installs a Halide feature check that refuses every sub-target above that
// level. Halide's multi-target wrapper caches its choice per kernel on the
// first call, so this must run before any kernel does. Throws Error for an
// unknown level or one this CPU cannot run.
void install_isa_override();

}  // namespace mhac::detail
