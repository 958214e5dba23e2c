# Runs the report's suite against each mutant build (SUITES: executables separated by |) and
# fails unless every one of them ran and failed it.
string(REPLACE "|" ";" suites "${SUITES}")
foreach(exe IN LISTS suites)
  execute_process(COMMAND ${exe} --gtest_filter=LayerNormTileReport.* --gtest_fail_fast
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT out MATCHES "\\[ RUN      \\] LayerNormTileReport")
    message(FATAL_ERROR "the report's suite did not run: ${exe} (${rc})\n${out}${err}")
  endif()
  if(rc EQUAL 0)
    message(FATAL_ERROR "mutant survived the report's suite: ${exe}")
  endif()
  string(REGEX MATCH "\\[  FAILED  \\] [A-Za-z0-9_.]+" first "${out}")
  message(STATUS "caught: ${exe} (${first})")
endforeach()
