# Shared build helpers.

# Warnings for the project's own targets.
function(tilenorm_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wno-missing-field-initializers>)
endfunction()

# tilenorm_add_test(NAME SOURCES a.cc b.cc [LIBS ...] [LABELS ...] [TIMEOUT s]
#                   [SANITIZER_SHARDS n])
# One GoogleTest executable registered with ctest as one test (gtest runs its cases); TIMEOUT
# defaults to TILENORM_TEST_TIMEOUT. In the sanitizer builds (TILENORM_SANITIZE, TILENORM_TSAN) a
# suite given SANITIZER_SHARDS n > 1 is registered instead as n tests NAME/1 ... NAME/n, each
# running every n-th of its cases (GoogleTest's GTEST_TOTAL_SHARDS and GTEST_SHARD_INDEX), so that
# `ctest -j` spreads a slow suite over the cores; each shard's COST makes ctest start them first.
function(tilenorm_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT;SANITIZER_SHARDS" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE tilenorm ${T_LIBS} GTest::gtest GTest::gtest_main)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  tilenorm_warnings(${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT ${TILENORM_TEST_TIMEOUT})
  endif()
  set(tests ${name})
  if(T_SANITIZER_SHARDS GREATER 1 AND (TILENORM_SANITIZE OR TILENORM_TSAN))
    set(tests "")
    foreach(i RANGE 1 ${T_SANITIZER_SHARDS})
      math(EXPR index "${i} - 1")
      add_test(NAME ${name}/${i} COMMAND ${name} --gtest_brief=1)
      set_tests_properties(${name}/${i} PROPERTIES COST 1000 ENVIRONMENT
        "GTEST_TOTAL_SHARDS=${T_SANITIZER_SHARDS};GTEST_SHARD_INDEX=${index}")
      list(APPEND tests ${name}/${i})
    endforeach()
  else()
    add_test(NAME ${name} COMMAND ${name} --gtest_brief=1)
  endif()
  set_tests_properties(${tests} PROPERTIES TIMEOUT ${T_TIMEOUT})
  if(T_LABELS)
    set_tests_properties(${tests} PROPERTIES LABELS "${T_LABELS}")
  endif()
endfunction()
