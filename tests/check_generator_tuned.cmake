# The `tuned` GeneratorParam (schedules/tuned_param.h) on the tiny fused
# kernel, one target: tuned=<that target>:key_block:64,query_block:32 gives
# the object bytes of key_block=64 query_block=32 given directly, tuned=<another
# target>:... the bytes of no knobs, and an unknown knob or a 0-or-1 knob set
# to 2 fails the generator.
# -DGENERATOR -DWORK_DIR
file(REMOVE_RECURSE ${WORK_DIR})
include(${CMAKE_CURRENT_LIST_DIR}/run_checked.cmake)
# As the build passes it: the ladder's spelling, -no_runtime added; the
# tuned value uses the canonical spelling.
set(target x86-64-linux-avx2-fma-f16c-no_runtime)
set(tiny num_heads=4 key_dim=16 value_dim=16 query_features=64 key_features=64
    value_features=64 output_features=64 use_bias=true mask_kind=none)
function(generate _name)
  file(MAKE_DIRECTORY ${WORK_DIR}/${_name})
  run(${GENERATOR} -g mhac_fused -f tiny_fused -n tiny_fused -o ${WORK_DIR}/${_name} -e object
      target=${target} ${tiny} ${ARGN})
endfunction()
generate(direct key_block=64 query_block=32)
generate(tuned "tuned=x86-64-linux-avx2-f16c-fma:key_block:64,query_block:32")
generate(defaults)
generate(other "tuned=x86-64-linux-sse41:key_block:64,query_block:32")

function(same _a _b _want)
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${WORK_DIR}/${_a}/tiny_fused.o
                          ${WORK_DIR}/${_b}/tiny_fused.o RESULT_VARIABLE differs)
  if(_want AND differs)
    message(FATAL_ERROR "${_a} and ${_b} differ: the tuned knobs were not applied as given")
  elseif(NOT _want AND NOT differs)
    message(FATAL_ERROR "${_a} and ${_b} are identical: the knobs changed nothing, the test shows nothing")
  endif()
endfunction()
same(direct tuned TRUE)
same(defaults other TRUE)
same(direct defaults FALSE)

execute_process(COMMAND ${GENERATOR} -g mhac_fused -f bad -n bad -o ${WORK_DIR} -e object
                        target=${target} ${tiny} "tuned=x86-64-linux-avx2-f16c-fma:bogus_knob:1"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "bogus_knob")
  message(FATAL_ERROR "an unknown knob in tuned was not an error naming it (exit ${rc}):\n${err}")
endif()
# The 0-or-1 knobs (set_switch in schedules/cpu/cpu_schedules.cpp): any
# other value is an error that names the knob and what 0 and 1 mean.
foreach(_switch "v_staging;in place;staged" "kv_at_blocks;at root;per key block"
                "absorb_kv;flash attention;folded K and V")
  list(GET _switch 0 _knob)
  list(GET _switch 1 _off)
  list(GET _switch 2 _on)
  execute_process(COMMAND ${GENERATOR} -g mhac_fused -f bad -n bad -o ${WORK_DIR} -e object
                          target=${target} ${tiny} ${_knob}=2
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT err MATCHES "${_knob}=2 is not 0 \\(${_off}\\) or 1 \\(${_on}\\)")
    message(FATAL_ERROR "${_knob}=2 was not an error naming the knob and its two values "
                        "(exit ${rc}):\n${err}")
  endif()
endforeach()
message(STATUS "tuned param: identical objects for the tuned target, defaults for another")
