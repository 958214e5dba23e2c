# Runs each suite filter (FILTERS: gtest filters separated by |) against each mutant build
# (SUITES: executables separated by |) and fails unless every mutant ran and failed every filter.
# Then runs each planted binary (PLANTED: executables separated by |, every tile test binary
# built against the planted machine failure) once, whole, and fails unless it failed and reported
# a result for every case it lists, some of them after its first failure.
string(REPLACE "|" ";" suites "${SUITES}")
string(REPLACE "|" ";" filters "${FILTERS}")
foreach(exe IN LISTS suites)
  foreach(filter IN LISTS filters)
    string(REGEX REPLACE "\\.\\*$" "" suite "${filter}")
    execute_process(COMMAND ${exe} --gtest_filter=${filter} --gtest_fail_fast
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT out MATCHES "\\[ RUN      \\] ${suite}")
      message(FATAL_ERROR "suite ${filter} did not run: ${exe} (${rc})\n${out}${err}")
    endif()
    if(rc EQUAL 0)
      message(FATAL_ERROR "mutant survived ${filter}: ${exe}")
    endif()
    string(REGEX MATCH "\\[  FAILED  \\] [A-Za-z0-9_.]+" first "${out}")
    message(STATUS "caught: ${exe} by ${filter} (${first})")
  endforeach()
endforeach()

string(REPLACE "|" ";" planted "${PLANTED}")
foreach(exe IN LISTS planted)
  execute_process(COMMAND ${exe} --gtest_list_tests OUTPUT_VARIABLE listed)
  string(REPLACE ";" "," listed "${listed}")
  string(REGEX MATCHALL "\n  [^\n]+" cases "\n${listed}")  # a case: a line indented by 2
  list(LENGTH cases n_cases)
  execute_process(COMMAND ${exe} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(REPLACE ";" "," out "${out}")
  # A case's result: "[       OK ] Suite.Case (3 ms)", FAILED or SKIPPED; the summary's lines
  # carry no time.
  string(REGEX MATCHALL "\\[ +(OK|FAILED|SKIPPED) +\\] [^\n]* \\([0-9]+ ms\\)" results "${out}")
  list(LENGTH results n_results)
  set(first_failed -1)
  set(i 0)
  foreach(r IN LISTS results)
    if(first_failed EQUAL -1 AND r MATCHES "^\\[  FAILED  \\]")
      set(first_failed ${i})
    endif()
    math(EXPR i "${i} + 1")
  endforeach()
  if(rc EQUAL 0 OR first_failed EQUAL -1)
    message(FATAL_ERROR "planted failure not caught: ${exe} (${rc}) reports no failed case")
  endif()
  math(EXPR after "${n_results} - ${first_failed} - 1")
  if(NOT n_results EQUAL n_cases OR after EQUAL 0)
    string(LENGTH "${out}" len)
    math(EXPR from "${len} - 3000")
    if(from LESS 0)
      set(from 0)
    endif()
    string(SUBSTRING "${out}" ${from} -1 tail)
    message(FATAL_ERROR "${exe} (${rc}) lists ${n_cases} cases but reported ${n_results}, "
                        "${after} after its first failure (case ${first_failed}):\n${tail}${err}")
  endif()
  message(STATUS "planted: ${exe} reported all ${n_cases} cases, ${after} after its first failure")
endforeach()
