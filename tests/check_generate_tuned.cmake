# `mhac generate --plan-only --tuned-db` on the tiny configuration, as the
# build plans it: an entry with this build's source hash and Halide version
# gives its kernel `tuned=`; a stale one (another source hash) is one warning
# naming it and its kernel keeps the hand defaults; `mhac inspect DIR` shows
# which entry tuned what.
# -DMHAC -DSOURCE_DIR -DHASH -DHALIDE_VERSION -DWORK_DIR
file(REMOVE_RECURSE ${WORK_DIR})
include(${CMAKE_CURRENT_LIST_DIR}/run_checked.cmake)
set(target x86-64-linux-avx2-f16c-fma)
function(entry _out _generator _params _hash)
  set(${_out} "{\"generator\": \"${_generator}\", \"config\": \"tiny\", \"kernel_params\": [${_params}],
    \"target\": \"${target}\", \"bucket\": \"all\", \"source_hash\": \"${_hash}\",
    \"halide_version\": \"${HALIDE_VERSION}\", \"knobs\": [\"key_block=64\"], \"found_by\": \"test\",
    \"timings\": [], \"cpu\": \"test\", \"cores\": 1, \"date\": \"2026-05-01T00:00:00Z\",
    \"budget_s\": 1, \"spent_s\": 1, \"candidates\": 1, \"rejected\": 0}" PARENT_SCOPE)
endfunction()
entry(fused mhac_fused "\"key_dim=16\", \"key_features=64\", \"mask_kind=none\", \"num_heads=4\",
  \"output_features=64\", \"query_features=64\", \"use_bias=true\", \"value_dim=16\", \"value_features=64\"" ${HASH})
entry(stale mhac_fused "\"key_dim=16\", \"key_features=64\", \"mask_kind=causal\", \"num_heads=4\",
  \"output_features=64\", \"query_features=64\", \"use_bias=true\", \"value_dim=16\", \"value_features=64\"" 0000000000000000)
file(WRITE ${WORK_DIR}/db/${target}.json
     "{\"format\": 1, \"target\": \"${target}\", \"entries\": [${fused}, ${stale}]}\n")
file(WRITE ${WORK_DIR}/tiny.txt "tiny 4 16 16 64 64 64 64 1 none,causal\n")

run(${MHAC} generate --config ${WORK_DIR}/tiny.txt --targets x86-64-linux-avx2-fma-f16c,x86-64-linux-sse41
    --name tiny_set --plan-only --tuned-db ${WORK_DIR}/db -o ${WORK_DIR}/out)
string(REGEX MATCHALL "warning: [^\n]*" warnings "${err}")
list(LENGTH warnings n)
if(NOT n EQUAL 1 OR NOT warnings MATCHES "${target}.json: mhac_fused tiny ${target} bucket all: ignored, stale: source hash 0000000000000000")
  message(FATAL_ERROR "expected one warning naming the stale entry, got:\n${err}")
endif()

file(READ ${WORK_DIR}/out/manifest.json manifest)
string(JSON count LENGTH "${manifest}" kernels)
math(EXPR last "${count} - 1")
set(tuned_kernels "")
foreach(i RANGE ${last})
  string(JSON name GET "${manifest}" kernels ${i} name)
  string(JSON params GET "${manifest}" kernels ${i} params)
  if(params MATCHES "tuned=")
    list(APPEND tuned_kernels ${name})
    if(NOT params MATCHES "\"tuned=${target}:key_block:64\"")
      message(FATAL_ERROR "${name}: unexpected tuned parameter in ${params}")
    endif()
  endif()
endforeach()
# The decode and few buckets' kernels (absorb_kv=1 by default) take its all entry.
if(NOT tuned_kernels STREQUAL
   "mha_fused_f32_tiny_none;mha_fused_f32_tiny_none_decode;mha_fused_f32_tiny_none_few")
  message(FATAL_ERROR "expected only mha_fused_f32_tiny_none and its decode and few kernels tuned, got "
                      "'${tuned_kernels}'")
endif()

run(${MHAC} inspect ${WORK_DIR}/out)
if(NOT out MATCHES "tuning avx2-f16c-fma: key_block=64 \\(2026-05-01\\)")
  message(FATAL_ERROR "mhac inspect does not show the tuning:\n${out}")
endif()
message(STATUS "tuned database: used and ignored as expected")

# A generator built from other sources than mhac (its schedule source hash,
# written into it, differs) is refused before anything is generated: mhac picks
# the tuned entries by its own hash.
file(WRITE ${WORK_DIR}/other_generator "mhac-schedule-source-hash=0123456789abcdef;")
execute_process(COMMAND ${CMAKE_COMMAND} -E env MHAC_GENERATOR=${WORK_DIR}/other_generator
                        ${MHAC} generate --config ${WORK_DIR}/tiny.txt --targets x86-64-linux-sse41
                        --tuned-db ${WORK_DIR}/db -o ${WORK_DIR}/other
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "built from other schedule sources \\(hash 0123456789abcdef\\) than this mhac \\(${HASH}\\)")
  message(FATAL_ERROR "a generator of other sources was not refused (exit ${rc}):\n${out}\n${err}")
endif()
if(EXISTS ${WORK_DIR}/other/manifest.json)
  message(FATAL_ERROR "a refused generate wrote a manifest")
endif()
message(STATUS "generator of other sources: refused")
