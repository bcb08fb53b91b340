# harness.sh — shared by the tests/cli_*.sh scripts (sourced): a work directory $T removed on
# exit, pass/fail counters and the check helpers. Each script ends with
#   echo "$pass passed, $fail failed"; [ $fail -eq 0 ]
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()   { pass=$((pass+1)); }
bad()  { fail=$((fail+1)); echo "FAIL: $*" >&2; }
# check WHAT CMD...: CMD must succeed; its output is shown when it does not
check() { local what=$1; shift; if "$@" >"$T/out" 2>&1; then ok; else bad "$what"; cat "$T/out" >&2; fi; }
# check_fails WHAT CMD...: CMD must fail
check_fails() { local what=$1; shift; if "$@" >"$T/out" 2>&1; then bad "$what (should fail)"; else ok; fi; }
