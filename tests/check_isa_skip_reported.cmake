# A level of the x86 ladder that this CPU cannot run must be reported by
# CTest as Skipped, and a level it runs as Passed: runs one test of each
# level through CTest and compares what the test printed with CTest's verdict.
# -DCTEST -DBUILD_DIR
foreach(isa IN ITEMS avx512 avx2 sse41)
  execute_process(COMMAND ${CTEST} --test-dir ${BUILD_DIR} -V
                          -R "^${isa}\\.IsaLevel\\.TheForcedLevelRuns$"
                  OUTPUT_VARIABLE out ERROR_VARIABLE out RESULT_VARIABLE rc)
  if(NOT out MATCHES "Test +#[0-9]+: ${isa}\\.IsaLevel")
    message(FATAL_ERROR "${isa}: the level's test did not run:\n${out}")
  endif()
  if(out MATCHES "level skipped")
    set(want "Skipped")
  else()
    set(want "Passed")
  endif()
  if(NOT out MATCHES "${isa}\\.IsaLevel\\.TheForcedLevelRuns [.]+[* ]*${want}")
    message(FATAL_ERROR "${isa}: expected CTest to report ${want}:\n${out}")
  endif()
  message(STATUS "${isa}: ${want}")
endforeach()
