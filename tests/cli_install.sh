#!/usr/bin/env bash
# Installation: `cmake --install` of the build into a temporary prefix puts the CLI, the shared
# library (SONAME, only the public ddct_* functions exported), the static library, the header,
# deltadct.pc and the man page there; a C program (examples/decompress.c) builds with
# `pkg-config --cflags --libs deltadct`, against the shared library and statically, and rebuilds a
# fine-tune byte for byte as the installed CLI does.
# usage: cli_install.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$1; GEN=$2
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/tools/harness.sh"
BUILD=$(cd "$(dirname "$DDCT")" && pwd)
for t in cmake pkg-config cc nm; do
  command -v $t >/dev/null || { echo "$t not found: skipped"; exit 0; }
done
P=$T/prefix
check "cmake --install" cmake --install "$BUILD" --prefix "$P"
LIB=$(dirname "$(find "$P" -name 'libdeltadct.so.*' -type f | head -1)")
check "installed: the CLI" test -x "$P/bin/deltadct"
check "installed: the shared library" test -f "$(ls "$LIB"/libdeltadct.so.*.*.* 2>/dev/null | head -1)"
check "installed: libdeltadct.so -> SONAME link" test -L "$LIB/libdeltadct.so"
check "installed: the static library" test -f "$LIB/libdeltadct.a"
check "installed: the header" test -f "$P/include/deltadct.h"
check "installed: deltadct.pc" test -f "$LIB/pkgconfig/deltadct.pc"
check "installed: the man page" test -f "$P/share/man/man1/deltadct.1"
so=$(ls "$LIB"/libdeltadct.so.*.*.* | head -1)
check "SONAME libdeltadct.so.MAJOR" sh -c "objdump -p '$so' | grep -q 'SONAME *libdeltadct\.so\.[0-9]*\$'"
# exported: exactly the functions the header marks DDCT_API
nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sort >"$T/exported"
grep -o '^DDCT_API [^(]*(' "$HERE/../include/deltadct.h" | sed 's/($//; s/.*[ *]//' | sort >"$T/declared"
if [ -s "$T/declared" ] && cmp -s "$T/exported" "$T/declared"; then ok
else bad "exported symbols differ from the header's DDCT_API functions: $(diff "$T/declared" "$T/exported" | head -10 | tr '\n' ' ')"; fi
check "the installed CLI runs" "$P/bin/deltadct" --version

export PKG_CONFIG_PATH=$LIB/pkgconfig
check "pkg-config knows deltadct" pkg-config --exists deltadct
# relocatable: the paths follow the .pc file to wherever the prefix is
check "pkg-config: the header's directory" test "$(realpath "$(pkg-config --variable=includedir deltadct)")" = "$(realpath "$P/include")"
check "pkg-config: the library's directory" test "$(realpath "$(pkg-config --variable=libdir deltadct)")" = "$(realpath "$LIB")"
if [ "${DDCT_ASAN:-0}" = 1 ]; then
  # a sanitized library must come after its runtime, which a plain program does not load first
  echo "sanitizer build: the example program is not linked against it"
else
  EX=$HERE/../examples/decompress.c
  check "example builds (shared)" sh -c "cc -std=c11 -Wall -Wextra -Werror '$EX' \$(pkg-config --cflags --libs deltadct) -o '$T/ex'"
  check "example builds (static)" sh -c "cc -std=c11 -Wall -Wextra -Werror '$EX' \$(pkg-config --cflags deltadct) '$LIB/libdeltadct.a' \$(pkg-config --static --libs deltadct | sed 's/-ldeltadct//') -o '$T/ex-static'"
  check "example uses the installed shared library" sh -c "LD_LIBRARY_PATH='$LIB' ldd '$T/ex' | grep -qF '$LIB/libdeltadct.so.'"
  check "genpair" "$GEN" "$T/pair" --dtype BF16 --seed 3
  B=$T/pair/base.safetensors; F=$T/pair/finetuned.safetensors
  check "compress (installed CLI)" "$P/bin/deltadct" compress "$B" "$F" -o "$T/m.ddct" -q
  check "decompress (installed CLI)" "$P/bin/deltadct" decompress "$B" "$T/m.ddct" -o "$T/cli.safetensors" -q
  check "example rebuilds (shared)" env LD_LIBRARY_PATH="$LIB" "$T/ex" "$B" "$T/m.ddct" "$T/ex.safetensors"
  check "example rebuilds (static)" "$T/ex-static" "$B" "$T/m.ddct" "$T/ex-static.safetensors"
  check "example = CLI, byte for byte (shared)" cmp "$T/cli.safetensors" "$T/ex.safetensors"
  check "example = CLI, byte for byte (static)" cmp "$T/cli.safetensors" "$T/ex-static.safetensors"
  check_fails "example: a missing .ddct fails" env LD_LIBRARY_PATH="$LIB" "$T/ex" "$B" "$T/none.ddct" "$T/x.safetensors"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
