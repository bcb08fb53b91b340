#!/usr/bin/env bash
# The man page (man/deltadct.1) stays complete: every command the CLI lists in 'deltadct --help'
# has a subsection under COMMANDS and one named "COMMAND options" under OPTIONS, and every option
# (long, and short as "-X,") that 'deltadct COMMAND --help' prints is documented there, in a .TP
# item of its own, written as roff wants it (\-\-name); the long options of 'deltadct --help'
# are in the page; the usual sections are there; no option is left with unescaped hyphens; and,
# where groff is installed, the page renders without a warning. A missing command, option or
# section is named.
# usage: cli_man.sh DELTADCT GENPAIR SHARED_DIR  (only DELTADCT is used)
set -uo pipefail
DDCT=$1
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/tools/harness.sh"
MAN="$(dirname "$0")/../man/deltadct.1"

if [ ! -f "$MAN" ]; then
  bad "man page not found: $MAN"
  echo "$pass passed, $fail failed"
  exit 1
fi

# section NAME: the lines of the .SH NAME section (title unquoted), without its .SH line
section() {
  awk -v n="$1" '/^\.SH([ \t]|$)/ { t = $0; sub(/^\.SH[ \t]*/, "", t); gsub(/"/, "", t); sub(/[ \t]+$/, "", t);
                                     on = (t == n); next }
                 on' "$MAN"
}
# subsection TITLE: the lines of the .SS TITLE subsection (in any section), without its .SS line
subsection() {
  awk -v n="$1" '/^\.SH([ \t]|$)/ { on = 0; next }
                 /^\.SS([ \t]|$)/ { t = $0; sub(/^\.SS[ \t]*/, "", t); gsub(/"/, "", t); sub(/[ \t]+$/, "", t);
                                     on = (t == n); next }
                 on' "$MAN"
}
# roff_rx OPTION: an ERE matching OPTION as written in roff (each '-' as '\-'), not as the start
# of a longer option (--dwt in \-\-dwt\-keep, -q in \-\-quiet)
roff_rx() {
  local rx
  rx=$(printf '%s' "$1" | sed 's/-/\\\\-/g')
  printf '(^|[^-])%s($|[^A-Za-z0-9_\\]|\\\\[^-])' "$rx"
}

# the sections a man page of this kind has
for s in NAME SYNOPSIS DESCRIPTION COMMANDS OPTIONS "EXIT STATUS" ENVIRONMENT FILES EXAMPLES "SEE ALSO"; do
  if grep -qE "^\.SH[[:space:]]+\"?$s\"?[[:space:]]*$" "$MAN"; then ok; else bad "man page has no section $s"; fi
done
# (sections go through files: grep -q ends a pipe early, which pipefail would count as a failure)
section "SEE ALSO" >"$T/seealso"
for ref in 'zstd (1)' 'xz (1)'; do
  if grep -qF ".BR $ref" "$T/seealso"; then ok; else bad "SEE ALSO does not name ${ref/ /}"; fi
done

# the commands, from the top-level usage ("  deltadct compress   BASE ...")
if ! "$DDCT" --help >"$T/usage" 2>&1; then bad "deltadct --help failed"; cat "$T/usage" >&2; fi
cmds=$(sed -nE 's/^[[:space:]]+deltadct[[:space:]]+([a-z][a-z0-9-]*)([[:space:]].*)?$/\1/p' "$T/usage" | sort -u)
ncmd=$(printf '%s\n' "$cmds" | grep -c .)
if [ "$ncmd" -ge 6 ]; then ok; else bad "found only $ncmd commands in 'deltadct --help': $cmds"; fi

# the long options of the top-level usage (--version, and those it shows for info, eval, verify)
for opt in $(grep -oE -- '--[A-Za-z0-9][A-Za-z0-9-]*' "$T/usage" | sort -u); do
  if grep -qE "$(roff_rx "$opt")" "$MAN"; then ok; else bad "option $opt of 'deltadct --help' is not in the man page"; fi
done

section COMMANDS >"$T/commands"
section SYNOPSIS >"$T/synopsis"
nopts=0
for cmd in $cmds; do
  # a subsection of COMMANDS, a mention in SYNOPSIS, and an options subsection
  if grep -qE "^\.SS[[:space:]]+\"?$cmd\"?[[:space:]]*$" "$T/commands"; then ok
  else bad "command $cmd has no subsection (.SS $cmd) under COMMANDS"; fi
  if grep -qE "deltadct $cmd([[:space:]]|$)" "$T/synopsis"; then ok
  else bad "command $cmd is not in SYNOPSIS"; fi
  subsection "$cmd options" >"$T/sub"
  if [ -s "$T/sub" ]; then ok; else bad "command $cmd has no subsection \"$cmd options\" under OPTIONS"; fi
  # the tags of its .TP items: each option has an item of its own there
  awk '/^\.TP([ \t]|$)/ { if ((getline line) > 0) print line }' "$T/sub" >"$T/tags"

  if ! "$DDCT" "$cmd" --help >"$T/help" 2>&1; then bad "deltadct $cmd --help failed"; cat "$T/help" >&2; continue; fi
  longs=$(grep -oE -- '--[A-Za-z0-9][A-Za-z0-9-]*' "$T/help" | sort -u)
  shorts=$(sed -nE 's/^[[:space:]]+(-[A-Za-z]),.*/\1/p' "$T/help" | sort -u)
  if [ -n "$longs" ]; then ok; else bad "no option found in 'deltadct $cmd --help'"; fi
  for opt in $longs $shorts; do
    nopts=$((nopts + 1))
    rx=$(roff_rx "$opt")
    if grep -qE "$rx" "$MAN"; then ok
    else bad "option $opt of '$cmd' is not in the man page (as $(printf '%s' "$opt" | sed 's/-/\\-/g'))"; continue; fi
    if grep -qE "$rx" "$T/tags"; then ok
    else bad "option $opt of '$cmd' has no item (.TP) in the \"$cmd options\" subsection"; fi
  done
done
echo "checked $ncmd commands, $nopts command options"

# every option in the roff source has its hyphens escaped (a bare "--x" or " -x" would print
# as a hyphen, not a minus sign, and cannot be searched for); comments are not looked at
if grep -vE '^\.\\"' "$MAN" | grep -nE -- '(^|[^\\])--[A-Za-z]|(^|[[:space:]([|])-[A-Za-z]' >"$T/raw"; then
  bad "unescaped hyphens in options:"; cat "$T/raw" >&2
else ok; fi

# renders without warnings
if command -v groff >/dev/null 2>&1; then
  if groff -man -Tutf8 -ww "$MAN" >/dev/null 2>"$T/warn" && [ ! -s "$T/warn" ]; then ok
  else bad "groff -man -Tutf8 -ww: warnings or errors:"; cat "$T/warn" >&2; fi
else
  echo "SKIP: groff not found, the render check (groff -man -Tutf8 -ww) did not run"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
