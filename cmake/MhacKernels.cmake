# mhac_add_kernel_set(): the one place a set of attention kernels is declared.
#
#   mhac_add_kernel_set(<name>
#     TARGETS <halide target> ...        # multi-target ladder, baseline last;
#                                        # or one CUDA target (x86-64-linux-cuda-cuda_capability_86)
#     [RUNTIME <halide runtime target>]  # share one Halide runtime between sets
#     [TUNED_DB <dir> | NONE]            # tuned-schedule database, default MHAC_TUNED_DB
#     CONFIGS "<row>" ...)               # one row per layer configuration
#
# A row is whitespace separated:
#   <config name> <num_heads> <key_dim> <value_dim> <query_features>
#   <key_features> <value_features> <output_features> <use_bias 0|1>
#   <mask kinds, comma separated: none,causal,dense> [<stage>:<key>=<value> ...]
# where the optional trailing stage:key=value entries pass extra generator
# parameters (schedule knobs) to that row's kernels of one stage (fused,
# projection, scores, combine).
#
# The table is expanded by the kernel planner (tools/plan, the same code
# `mhac generate` runs): for every row and the always-present `generic`
# configuration it plans the fused layer kernel per mask kind, the staged
# kernels (projections, scores, combine) and the shared masked-softmax
# kernels, and writes the registry source the runtime dispatches from. This
# file only declares what the plan lists. Each kernel x ladder target takes
# the knobs of its entry in the tuned database (docs/tuning.md) when the
# entry was tuned with this build's MHAC_SCHEDULE_SOURCE_HASH and
# MHAC_HALIDE_VERSION; entries not used for a reason worth knowing (stale,
# a target outside the ladder) are configure-time warnings. It creates:
#   <name>          static library: every kernel + the registry + one Halide runtime
#   include file    mhac/kernel_set_<name>.h declaring mhac::kernel_sets::<name>()
#
#   mhac_add_kernel_set_list(<name> FUNCTION <fn> SETS <set> ...)
# creates the static library <name> linking every listed set, with
# mhac/<name>.h declaring mhac::kernel_sets::<fn>(): all of them, in order.
#
#   mhac_add_halide_runtime(<name> TARGETS <halide target> ...)
# is add_halide_runtime() (a Halide runtime several sets can share), unless
# kernels are taken from another build (below).
#
# With MHAC_KERNELS_FROM=<build dir of the same sources> (the sanitizer
# builds, docs/sanitizers.md) nothing is generated: the kernel libraries and
# Halide runtimes are that build's, imported from the same place in its tree,
# and only the registries are compiled here. Halide's objects are machine
# code no sanitizer instruments, so these are the bytes this build would
# have generated, without the generator runs. The plan must be that build's
# (checked): build it first.
include_guard(GLOBAL)

# In the mhac build the generator target is mhac_generators; an installed
# package (mhacConfig.cmake) points this at the imported executable and
# MHAC_PLANNER at the installed planner.
if(NOT MHAC_GENERATOR_TARGET)
  set(MHAC_GENERATOR_TARGET mhac_generators)
endif()
if(NOT MHAC_CMAKE_DIR)
  set(MHAC_CMAKE_DIR ${CMAKE_CURRENT_LIST_DIR})
endif()

# The planner runs at configure time, so in the mhac build it is compiled
# here, before any target exists, with the host's C++ compiler (a cross
# build's compiler makes programs this machine cannot run).
function(_mhac_build_planner _out)
  set(_src ${PROJECT_SOURCE_DIR}/tools/plan)
  set(_sources ${_src}/main.cpp ${_src}/kernel_plan.cpp ${_src}/tuned_db.cpp)
  set(_deps ${_sources} ${_src}/kernel_plan.h ${_src}/tuned_db.h
            ${PROJECT_SOURCE_DIR}/schedules/tuned_param.h
            ${PROJECT_SOURCE_DIR}/runtime/include/mhac/kernel_abi.h)
  # nlohmann-json (header only; Debian nlohmann-json3-dev) reads the tuned database.
  find_path(MHAC_NLOHMANN_JSON_INCLUDE_DIR nlohmann/json.hpp NO_CMAKE_FIND_ROOT_PATH)
  if(NOT MHAC_NLOHMANN_JSON_INCLUDE_DIR)
    message(FATAL_ERROR "the kernel planner needs nlohmann/json.hpp (Debian: nlohmann-json3-dev)")
  endif()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_deps})
  set(_exe ${CMAKE_BINARY_DIR}/mhac_plan)
  set(_stale FALSE)
  foreach(_f IN LISTS _deps)
    if(NOT EXISTS ${_exe} OR ${_f} IS_NEWER_THAN ${_exe})
      set(_stale TRUE)
    endif()
  endforeach()
  if(_stale)
    if(CMAKE_CROSSCOMPILING)
      find_program(MHAC_HOST_CXX NAMES c++ g++ clang++ REQUIRED NO_CMAKE_FIND_ROOT_PATH)
      set(_cxx ${MHAC_HOST_CXX})
    else()
      set(_cxx ${CMAKE_CXX_COMPILER})
    endif()
    execute_process(
      COMMAND ${_cxx} -std=c++17 -O2 -I${_src} -I${PROJECT_SOURCE_DIR}/schedules
              -I${PROJECT_SOURCE_DIR}/runtime/include -I${MHAC_NLOHMANN_JSON_INCLUDE_DIR}
              ${_sources} -o ${_exe}
      RESULT_VARIABLE _rc ERROR_VARIABLE _err)
    if(NOT _rc EQUAL 0)
      message(FATAL_ERROR "building the kernel planner (tools/plan) failed:\n${_err}")
    endif()
  endif()
  set(${_out} ${_exe} PARENT_SCOPE)
endfunction()

# What a tuned-database entry must have been tuned with to be used: the
# first 16 hex digits of the SHA-256 of "<path>:<sha256>\n" over the
# algorithm and schedule sources and the kernel ABI, in path order (the
# database itself, schedules/tuned/, excluded). Any edit there makes every
# entry stale, never wrongly applied.
function(_mhac_schedule_source_hash _out)
  set(_root ${PROJECT_SOURCE_DIR})
  file(GLOB _files RELATIVE ${_root} ${_root}/generators/*.h ${_root}/generators/*.cpp)
  file(GLOB_RECURSE _sched RELATIVE ${_root} ${_root}/schedules/*.h ${_root}/schedules/*.cpp)
  list(FILTER _sched EXCLUDE REGEX "^schedules/tuned/")
  list(APPEND _files ${_sched} runtime/include/mhac/kernel_abi.h)
  list(SORT _files)
  set(_text "")
  foreach(_f IN LISTS _files)
    file(SHA256 ${_root}/${_f} _h)
    string(APPEND _text "${_f}:${_h}\n")
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_root}/${_f})
  endforeach()
  string(SHA256 _h "${_text}")
  string(SUBSTRING ${_h} 0 16 _h)
  set(${_out} ${_h} PARENT_SCOPE)
endfunction()

if(NOT MHAC_PLANNER)
  _mhac_build_planner(MHAC_PLANNER)
endif()
# An installed package (mhacConfig.cmake) sets these to its generator's.
if(NOT MHAC_SCHEDULE_SOURCE_HASH)
  _mhac_schedule_source_hash(MHAC_SCHEDULE_SOURCE_HASH)
endif()
if(NOT MHAC_HALIDE_VERSION)
  set(MHAC_HALIDE_VERSION ${Halide_VERSION})
endif()
if(NOT DEFINED MHAC_DEFAULT_TUNED_DB)
  set(MHAC_DEFAULT_TUNED_DB ${PROJECT_SOURCE_DIR}/schedules/tuned)
endif()
set(MHAC_TUNED_DB ${MHAC_DEFAULT_TUNED_DB} CACHE PATH
    "Tuned-schedule database the kernel sets are compiled from (docs/tuning.md)")

# Runs the planner; what it prints on stderr on success are warnings, one a line.
function(_mhac_run_planner _what)
  execute_process(COMMAND ${MHAC_PLANNER} ${ARGN} RESULT_VARIABLE _rc ERROR_VARIABLE _err)
  string(STRIP "${_err}" _err)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${_what}: ${_err}")
  endif()
  if(_err)
    string(REPLACE "\n" ";" _lines "${_err}")
    foreach(_line IN LISTS _lines)
      message(WARNING "${_what}: tuned database: ${_line}")
    endforeach()
  endif()
endfunction()

# The directory of MHAC_KERNELS_FROM that matches this one.
function(_mhac_kernels_from_dir _out)
  file(RELATIVE_PATH _rel ${CMAKE_BINARY_DIR} ${CMAKE_CURRENT_BINARY_DIR})
  set(${_out} ${MHAC_KERNELS_FROM}/${_rel} PARENT_SCOPE)
endfunction()

# An imported static library of MHAC_KERNELS_FROM (lib<name>.a, its header
# next to it).
function(_mhac_import_kernel_lib _lib)
  _mhac_kernels_from_dir(_dir)
  add_library(${_lib} STATIC IMPORTED GLOBAL)
  set_target_properties(${_lib} PROPERTIES IMPORTED_LOCATION ${_dir}/lib${_lib}.a
                                           INTERFACE_INCLUDE_DIRECTORIES ${_dir})
endfunction()

function(mhac_add_halide_runtime _rt)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "" "TARGETS")
  if(NOT MHAC_KERNELS_FROM)
    add_halide_runtime(${_rt} TARGETS ${ARG_TARGETS})
    return()
  endif()
  _mhac_import_kernel_lib(${_rt})
  # What add_halide_runtime() gives its users.
  find_package(Threads REQUIRED)
  set_target_properties(${_rt} PROPERTIES INTERFACE_LINK_LIBRARIES
                                          "Halide::Runtime;Threads::Threads;${CMAKE_DL_LIBS}")
endfunction()

function(_mhac_kernel _lib _generator _targets _runtime)
  # Defines one Halide library once (CPU sets with the same rows share it).
  if(TARGET ${_lib})
    return()
  endif()
  if(MHAC_KERNELS_FROM)
    _mhac_import_kernel_lib(${_lib})
    set_target_properties(${_lib} PROPERTIES INTERFACE_LINK_LIBRARIES ${_runtime})
    return()
  endif()
  # MHAC_EMIT_STMT=ON keeps Halide's lowered statement (HTML) and assembly
  # of every kernel next to its library, for review.
  set(_review "")
  if(MHAC_EMIT_STMT)
    set(_review STMT_HTML _mhac_stmt ASSEMBLY _mhac_asm)
  endif()
  add_halide_library(${_lib} FROM ${MHAC_GENERATOR_TARGET}
                     GENERATOR ${_generator}
                     FUNCTION_NAME ${_lib}
                     TARGETS ${_targets}
                     USE_RUNTIME ${_runtime}
                     ${_review}
                     PARAMS ${ARGN})
endfunction()

function(mhac_add_kernel_set _set)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "RUNTIME;TUNED_DB" "TARGETS;CONFIGS")
  if(NOT ARG_TARGETS)
    message(FATAL_ERROR "mhac_add_kernel_set(${_set}): TARGETS is required")
  endif()
  if(NOT ARG_TUNED_DB)
    set(ARG_TUNED_DB ${MHAC_TUNED_DB})
  endif()
  set(_db_args "")
  if(NOT ARG_TUNED_DB STREQUAL "NONE")
    set(_db_args --db ${ARG_TUNED_DB} --source-hash ${MHAC_SCHEDULE_SOURCE_HASH}
                 --halide-version ${MHAC_HALIDE_VERSION})
    # A changed, added or removed database file re-plans.
    file(GLOB _db_files ${ARG_TUNED_DB}/*.json)
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_db_files})
    if(IS_DIRECTORY ${ARG_TUNED_DB})
      set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${ARG_TUNED_DB})
    endif()
  endif()
  set(_gen_dir ${CMAKE_CURRENT_BINARY_DIR}/${_set}_registry)
  string(JOIN "\n" _table ${ARG_CONFIGS})
  file(CONFIGURE OUTPUT ${_gen_dir}/${_set}_table.txt CONTENT "${_table}\n" @ONLY)
  string(JOIN "," _targets_csv ${ARG_TARGETS})
  _mhac_run_planner("mhac_add_kernel_set(${_set})" set --name ${_set} --targets ${_targets_csv}
                    --table ${_gen_dir}/${_set}_table.txt --out ${_gen_dir} ${_db_args})
  include(${_gen_dir}/${_set}_plan.cmake)
  if(MHAC_KERNELS_FROM)
    _mhac_kernels_from_dir(_from)
    set(_from_plan ${_from}/${_set}_registry/${_set}_plan.cmake)
    execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${_gen_dir}/${_set}_plan.cmake
                            ${_from_plan} RESULT_VARIABLE _differs)
    if(_differs)
      message(FATAL_ERROR "mhac_add_kernel_set(${_set}): ${_from_plan} is missing or plans "
                          "other kernels than this build: configure and build ${MHAC_KERNELS_FROM} first")
    endif()
  endif()

  if(ARG_RUNTIME)
    set(_runtime ${ARG_RUNTIME})
  else()
    set(_runtime ${_set}_halide_runtime)
    mhac_add_halide_runtime(${_runtime} TARGETS ${MHAC_PLAN_RUNTIME_TARGET})
  endif()
  foreach(_lib IN LISTS MHAC_PLAN_KERNELS)
    _mhac_kernel(${_lib} ${MHAC_PLAN_${_lib}_GENERATOR} "${ARG_TARGETS}" ${_runtime}
                 ${MHAC_PLAN_${_lib}_PARAMS})
  endforeach()

  add_library(${_set} STATIC ${_gen_dir}/${_set}_registry.cpp)
  target_include_directories(${_set} PUBLIC $<BUILD_INTERFACE:${_gen_dir}>)
  target_link_libraries(${_set} PUBLIC mhac::runtime ${MHAC_PLAN_KERNELS} ${_runtime})
endfunction()

function(mhac_add_kernel_set_list _name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "FUNCTION" "SETS")
  if(NOT ARG_FUNCTION OR NOT ARG_SETS)
    message(FATAL_ERROR "mhac_add_kernel_set_list(${_name}): FUNCTION and SETS are required")
  endif()
  set(_gen_dir ${CMAKE_CURRENT_BINARY_DIR}/${_name}_list)
  string(JOIN "," _sets_csv ${ARG_SETS})
  _mhac_run_planner("mhac_add_kernel_set_list(${_name})" list --header mhac/${_name}.h
                    --function ${ARG_FUNCTION} --sets ${_sets_csv} --out ${_gen_dir})
  add_library(${_name} STATIC ${_gen_dir}/${_name}.cpp)
  target_include_directories(${_name} PUBLIC $<BUILD_INTERFACE:${_gen_dir}>)
  target_link_libraries(${_name} PUBLIC ${ARG_SETS})
endfunction()
