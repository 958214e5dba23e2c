# Runs each suite filter (FILTERS: gtest filters separated by |) against each mutant build
# (SUITES: executables separated by |) and fails unless every mutant ran and failed every filter.
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
