# A kernel file includes the kernel API of its own kind only: compiles each file of
# kernel_domain_check/ (each must fail with its #error) and, with the same command, a real kernel
# of each kind (each must compile, so the failures are the wall's and not the command's).
# -DCXX=compiler -DSRC=project source dir
set(flags -std=c++20 -fsyntax-only -I${SRC}/src -I${SRC}/include)
set(dir ${SRC}/src/tile/ops)

function(expect_compiles file)
  execute_process(COMMAND ${CXX} ${flags} ${file} RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${file} should compile:\n${err}")
  endif()
endfunction()

function(expect_error file pattern)
  execute_process(COMMAND ${CXX} ${flags} ${file} RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(rc EQUAL 0)
    message(FATAL_ERROR "${file} compiled; it includes the kernel API of both kinds")
  endif()
  if(NOT err MATCHES "${pattern}")
    message(FATAL_ERROR "${file} failed, but not with \"${pattern}\":\n${err}")
  endif()
  message(STATUS "${file}: fails as it must")
endfunction()

expect_compiles(${dir}/norm_forward/compute.cc)
expect_compiles(${dir}/norm_forward/reader.cc)
# The #error of whichever header comes second (dataflow_api.h or compute/common.h).
set(wall "#error.*a kernel file includes only the API of its own kind")
expect_error(${dir}/kernel_domain_check/compute_with_dataflow_helpers.cc "${wall}")
expect_error(${dir}/kernel_domain_check/reader_with_compute_api.cc "${wall}")
