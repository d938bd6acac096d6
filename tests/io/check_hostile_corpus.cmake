# The committed corpus (tests/io/hostile/) is what make_hostile.cpp writes:
# regenerate it into WORK_DIR and compare file by file.
include(${CMAKE_CURRENT_LIST_DIR}/../run_checked.cmake)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
run(${GENERATOR} ${FIXTURE} ${WORK_DIR})
file(GLOB committed RELATIVE ${CORPUS} ${CORPUS}/*)
file(GLOB generated RELATIVE ${WORK_DIR} ${WORK_DIR}/*)
list(SORT committed)
list(SORT generated)
if(NOT committed STREQUAL generated)
  message(FATAL_ERROR "corpus files differ: committed ${committed}, generated ${generated}")
endif()
foreach(f IN LISTS committed)
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${CORPUS}/${f} ${WORK_DIR}/${f}
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${f} differs from what make_hostile writes; regenerate the corpus:\n"
                        "  ${GENERATOR} ${FIXTURE} ${CORPUS}")
  endif()
endforeach()
list(LENGTH committed n)
message(STATUS "hostile corpus: ${n} files reproduced")
