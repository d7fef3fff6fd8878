# Writes OUT: the bytes of IN as a C array named NAME, NUL-terminated so it can also be read
# as a string, and its length (without that NUL) as NAME_len. Run as
#   cmake -DIN=docs/openapi.json -DOUT=build/x_gen.c -DNAME=symbol -P tools/embed_file.cmake
# Hex bytes rather than a string literal: any byte is safe and no compiler limit on the length
# of a string literal applies.
foreach(var IN ITEMS IN OUT NAME)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "embed_file.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT NAME MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
  message(FATAL_ERROR "embed_file.cmake: NAME \"${NAME}\" is not a C identifier")
endif()

file(READ ${IN} hex HEX)
string(LENGTH "${hex}" nhex)
math(EXPR n "${nhex} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# 16 bytes a line keeps the generated file readable in a diff or a debugger (CMake's regular
# expressions have no {n} repetition, hence the spelled-out pattern).
string(REPEAT "0x[0-9a-f][0-9a-f]," 16 line16)
string(REGEX REPLACE "(${line16})" "\\1\n    " bytes "${bytes}")
get_filename_component(in_name ${IN} NAME)

file(WRITE ${OUT}
  "/* generated from ${in_name} by tools/embed_file.cmake; do not edit */\n"
  "const char ${NAME}[] = {\n    ${bytes}0};\n"
  "const unsigned long ${NAME}_len = ${n};\n")
