# mhac_add_kernel_set(): the one place a set of attention kernels is declared.
#
#   mhac_add_kernel_set(<name>
#     TARGETS <halide target> ...        # multi-target ladder, baseline last;
#                                        # or one CUDA target (x86-64-linux-cuda-cuda_capability_86)
#     [RUNTIME <halide runtime target>]  # share one Halide runtime between sets
#     CONFIGS "<row>" ...)               # one row per layer configuration
#
# A row is whitespace separated:
#   <config name> <num_heads> <key_dim> <value_dim> <query_features>
#   <key_features> <value_features> <output_features> <use_bias 0|1>
#   <mask kinds, comma separated: none,causal,dense>
#
# For every row (and for the always-present `generic` configuration, whose
# sizes are known only at run time) it generates the fused layer kernel per
# mask kind and the staged kernels (projections, scores, combine), shares the
# masked-softmax kernels, and writes the registry source the runtime
# dispatches from. It creates:
#   <name>          static library: every kernel + the registry + one Halide runtime
#   include file    mhac/kernel_set_<name>.h declaring mhac::kernel_sets::<name>()
include_guard(GLOBAL)

# In the mhac build the generator target is mhac_generators; an installed
# package (mhacConfig.cmake) points this at the imported executable.
if(NOT MHAC_GENERATOR_TARGET)
  set(MHAC_GENERATOR_TARGET mhac_generators)
endif()
if(NOT MHAC_CMAKE_DIR)
  set(MHAC_CMAKE_DIR ${CMAKE_CURRENT_LIST_DIR})
endif()

set(MHAC_MASK_KINDS none causal dense)    # order of mhac::MaskKind
set(MHAC_KERAS_PATHS fused explicit)       # order of mhac::KerasPath

function(_mhac_kernel _set _lib _generator)
  # Defines one Halide library once (several configurations may share it) and
  # records it for the set.
  if(NOT TARGET ${_lib})
    get_property(_targets GLOBAL PROPERTY _mhac_${_set}_targets)
    get_property(_runtime GLOBAL PROPERTY _mhac_${_set}_runtime)
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
    set_property(GLOBAL APPEND PROPERTY _mhac_${_set}_libs ${_lib})
  endif()
endfunction()

function(_mhac_projection_name _out _in _features _bias)
  if(_in EQUAL 0)
    set(_name mha_projection_f32_generic)
  else()
    set(_name mha_projection_f32_e${_in}_j${_features})
  endif()
  if(NOT _bias)
    string(APPEND _name _nobias)
  endif()
  set(${_out} ${_name} PARENT_SCOPE)
endfunction()

function(mhac_add_kernel_set _set)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "RUNTIME" "TARGETS;CONFIGS")
  if(NOT ARG_TARGETS)
    message(FATAL_ERROR "mhac_add_kernel_set(${_set}): TARGETS is required")
  endif()
  set_property(GLOBAL PROPERTY _mhac_${_set}_targets ${ARG_TARGETS})
  list(GET ARG_TARGETS -1 _baseline)
  string(REGEX MATCH "^[a-z0-9]+-[0-9]+-[a-z]+" _triple "${_baseline}")
  # Device of the set: Halide's multi-target dispatch checks CPU features only,
  # so a CUDA set holds CUDA targets alone and the runtime picks the device.
  set(MHAC_SET_DEVICE cpu)
  set(MHAC_SET_CUDA_CAPABILITY 0)
  if(_baseline MATCHES "-cuda")
    set(MHAC_SET_DEVICE cuda)
    if(_baseline MATCHES "cuda_capability_([0-9]+)")
      set(MHAC_SET_CUDA_CAPABILITY ${CMAKE_MATCH_1})
    else()
      set(MHAC_SET_CUDA_CAPABILITY 20)
    endif()
  endif()
  if(ARG_RUNTIME)
    set(_runtime ${ARG_RUNTIME})
  else()
    set(_runtime ${_set}_halide_runtime)
    add_halide_runtime(${_runtime} TARGETS ${_triple})
  endif()
  set_property(GLOBAL PROPERTY _mhac_${_set}_runtime ${_runtime})
  # Kernel names carry the device so CPU and CUDA sets never share a library.
  set(_sfx "")
  if(MHAC_SET_DEVICE STREQUAL "cuda")
    set(_sfx "__cuda${MHAC_SET_CUDA_CAPABILITY}")
  endif()

  set(_includes "")
  set(_softmax_rows "")
  foreach(_path IN LISTS MHAC_KERAS_PATHS)
    string(APPEND _softmax_rows "    {")
    foreach(_mask IN LISTS MHAC_MASK_KINDS)
      set(_lib mha_softmax_f32_${_mask}_${_path}${_sfx})
      _mhac_kernel(${_set} ${_lib} mhac_masked_softmax mask_kind=${_mask} path=${_path})
      string(APPEND _includes "#include \"${_lib}.h\"\n")
      string(APPEND _softmax_rows "{\"${_lib}\", ${_lib}}, ")
    endforeach()
    string(APPEND _softmax_rows "},\n")
  endforeach()

  set(_config_rows "")
  set(_rows "generic 0 0 0 0 0 0 0 1 none,causal,dense" ${ARG_CONFIGS})
  foreach(_row IN LISTS _rows)
    string(STRIP "${_row}" _row)
    string(REGEX REPLACE "[ \t]+" ";" _f "${_row}")
    list(LENGTH _f _n)
    if(NOT _n EQUAL 10)
      message(FATAL_ERROR "mhac_add_kernel_set(${_set}): row '${_row}' needs 10 fields, has ${_n}")
    endif()
    list(GET _f 0 _cfg)
    list(GET _f 1 _heads)
    list(GET _f 2 _kd)
    list(GET _f 3 _vd)
    list(GET _f 4 _eq)
    list(GET _f 5 _ek)
    list(GET _f 6 _ev)
    list(GET _f 7 _o)
    list(GET _f 8 _bias)
    list(GET _f 9 _masks)
    string(REPLACE "," ";" _masks "${_masks}")
    if(_bias)
      set(_bias_flag true)
    else()
      set(_bias_flag false)
    endif()
    math(EXPR _jq "${_heads} * ${_kd}")
    math(EXPR _jv "${_heads} * ${_vd}")

    # Staged path (scores, dropout, N-D, gate): projections (query, key,
    # value, output, gate), scores per Keras path, combine.
    set(_proj_entries "")
    foreach(_p IN ITEMS "${_eq} ${_jq}" "${_ek} ${_jq}" "${_ev} ${_jv}" "${_jv} ${_o}" "${_eq} ${_jv}")
      string(REPLACE " " ";" _p "${_p}")
      list(GET _p 0 _pin)
      list(GET _p 1 _pout)
      _mhac_projection_name(_lib ${_pin} ${_pout} ${_bias})
      string(APPEND _lib "${_sfx}")
      _mhac_kernel(${_set} ${_lib} mhac_projection
                   in_features=${_pin} out_features=${_pout} use_bias=${_bias_flag})
      string(APPEND _includes "#include \"${_lib}.h\"\n")
      string(APPEND _proj_entries "{\"${_lib}\", ${_lib}}, ")
    endforeach()
    if(_heads EQUAL 0)
      set(_scores_stem mha_scores_f32_generic)
      set(_combine mha_combine_f32_generic${_sfx})
    else()
      set(_scores_stem mha_scores_f32_n${_heads}_h${_kd})
      set(_combine mha_combine_f32_n${_heads}_hv${_vd}${_sfx})
    endif()
    set(_scores_entries "")
    foreach(_path IN LISTS MHAC_KERAS_PATHS)
      set(_lib ${_scores_stem}_${_path}${_sfx})
      _mhac_kernel(${_set} ${_lib} mhac_scores num_heads=${_heads} key_dim=${_kd} path=${_path})
      string(APPEND _includes "#include \"${_lib}.h\"\n")
      string(APPEND _scores_entries "{\"${_lib}\", ${_lib}}, ")
    endforeach()
    _mhac_kernel(${_set} ${_combine} mhac_combine num_heads=${_heads} value_dim=${_vd})
    string(APPEND _includes "#include \"${_combine}.h\"\n")

    # Fused path, one kernel per mask kind compiled for this configuration.
    set(_fused_entries "")
    foreach(_mask IN LISTS MHAC_MASK_KINDS)
      if(_mask IN_LIST _masks)
        set(_lib mha_fused_f32_${_cfg}_${_mask}${_sfx})
        _mhac_kernel(${_set} ${_lib} mhac_fused
                     num_heads=${_heads} key_dim=${_kd} value_dim=${_vd}
                     query_features=${_eq} key_features=${_ek} value_features=${_ev}
                     output_features=${_o} use_bias=${_bias_flag} mask_kind=${_mask})
        string(APPEND _includes "#include \"${_lib}.h\"\n")
        string(APPEND _fused_entries "{\"${_lib}\", ${_lib}}, ")
      else()
        string(APPEND _fused_entries "{nullptr, nullptr}, ")
      endif()
    endforeach()

    string(APPEND _config_rows
      "    {\"${_cfg}\", {${_heads}, ${_kd}, ${_vd}, ${_eq}, ${_ek}, ${_ev}, ${_o}, ${_bias_flag}},\n"
      "     {${_fused_entries}},\n"
      "     {${_proj_entries}},\n"
      "     {${_scores_entries}},\n"
      "     {\"${_combine}\", ${_combine}}},\n")
  endforeach()

  string(REPLACE ";" " " _targets_str "${ARG_TARGETS}")
  set(_gen_dir ${CMAKE_CURRENT_BINARY_DIR}/${_set}_registry)
  set(MHAC_SET_NAME ${_set})
  set(MHAC_SET_TARGETS "${_targets_str}")
  set(MHAC_SET_INCLUDES "${_includes}")
  set(MHAC_SET_CONFIG_ROWS "${_config_rows}")
  set(MHAC_SET_SOFTMAX_ROWS "${_softmax_rows}")
  configure_file(${MHAC_CMAKE_DIR}/kernel_set_registry.cpp.in ${_gen_dir}/${_set}_registry.cpp @ONLY)
  configure_file(${MHAC_CMAKE_DIR}/kernel_set.h.in ${_gen_dir}/mhac/kernel_set_${_set}.h @ONLY)

  get_property(_libs GLOBAL PROPERTY _mhac_${_set}_libs)
  add_library(${_set} STATIC ${_gen_dir}/${_set}_registry.cpp)
  target_include_directories(${_set} PUBLIC $<BUILD_INTERFACE:${_gen_dir}>)
  target_link_libraries(${_set} PUBLIC mhac::runtime ${_libs} ${_runtime})
endfunction()
