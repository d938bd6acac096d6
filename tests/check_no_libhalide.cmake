# Fails when BINARY depends on libHalide or LLVM (dynamic) or carries the
# Halide compiler's symbols (static).
execute_process(COMMAND ldd ${BINARY} OUTPUT_VARIABLE deps RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ldd ${BINARY} failed")
endif()
if(deps MATCHES "[Hh]alide|LLVM|llvm")
  message(FATAL_ERROR "${BINARY} links the Halide compiler or LLVM:\n${deps}")
endif()
execute_process(COMMAND nm -C ${BINARY} OUTPUT_VARIABLE syms)
if(syms MATCHES "Halide::Internal::|llvm::")
  message(FATAL_ERROR "${BINARY} contains Halide compiler or LLVM symbols")
endif()
message(STATUS "${BINARY}: no libHalide, no LLVM\n${deps}")
