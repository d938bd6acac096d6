# Fails when BINARY needs libHalide or LLVM (dynamic section) or carries the
# Halide compiler's symbols (static). Uses readelf/nm of the binary's own
# architecture, so cross builds are checked too.
execute_process(COMMAND ${READELF} -d ${BINARY} OUTPUT_VARIABLE deps RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${READELF} -d ${BINARY} failed")
endif()
string(REGEX MATCHALL "NEEDED[^\n]*" needed "${deps}")
string(REPLACE ";" "\n" needed "${needed}")
if(needed MATCHES "[Hh]alide|LLVM|llvm")
  message(FATAL_ERROR "${BINARY} links the Halide compiler or LLVM:\n${needed}")
endif()
execute_process(COMMAND ${NM} -C ${BINARY} OUTPUT_VARIABLE syms RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} ${BINARY} failed")
endif()
# Compiler-side classes (the runtime's own Halide::Internal::GPUCompilationCache
# is expected when a CUDA set is linked).
if(syms MATCHES "Halide::Func::|Halide::Pipeline::|Halide::Internal::(IRMutator|IRVisitor|CodeGen|lower)|llvm::")
  message(FATAL_ERROR "${BINARY} contains Halide compiler or LLVM symbols")
endif()
message(STATUS "${BINARY}: no libHalide, no LLVM. Needed libraries:\n${needed}")
