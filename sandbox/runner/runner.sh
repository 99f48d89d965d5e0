# Sandgate's in-sandbox runner for bash: protocol `sandgate-runner/1` (see PROTOCOL.md).
#
# Runs as the sandbox's first process, on the image's own bash, with nothing but coreutils and
# jq (the bash image has no python):
#
#     bash /sandgate/runner.sh
#
# Before it says `ready` it starts the two helpers the request then needs, so that nothing is
# started on the request's path but the code's own shell: jq, waiting for the frame to turn it
# into shell assignments, and a monitor, waiting for the execution's token. Then it reads one
# frame from stdin (the header with `read`, exactly its length with `read -N`), writes the
# files under /work, and runs the code with `bash -c` in /work, so `exit`, traps and exit codes
# are the shell's own; whatever follows the frame on stdin is the code's stdin.
#
# bash says nothing to anyone when a fork is refused but the message on the failing shell's
# stderr, so the monitor counts the sandbox's processes instead (zombies included, as the
# kernel's RLIMIT_NPROC does) every 10 ms, and writes the `limit` record once they reach the
# limit: the next fork is refused. The runner and the monitor are the two processes the
# language allows on top of the code's (`sandbox.languages`).
set -u
LC_ALL=C # this shell's own, not exported: `read -N` counts bytes, as the header does
exec 3>&1       # records: the code redirecting its stdout does not touch them

readonly magic=SGR/1 max_frame=$((256 << 20)) bad_frame=125 work=/work
token=-

send() { printf '\036%s %s %s\n' "$magic" "$token" "$1" >&3; }

fail() { # the runner could not run the frame: say why (as a JSON string), exit 125
  local detail=${1:0:1000}
  detail=${detail//\\/\\\\}
  detail=${detail//\"/\\\"}
  detail=${detail//$'\n'/\\n}
  send "{\"type\":\"error\",\"detail\":\"${detail//[[:cntrl:]]/ }\"}"
  exit "$bad_frame"
}

monitor() {
  local token limit
  IFS= read -r token && IFS= read -r limit || exit 0
  while :; do
    set -- /proc/[0-9]*
    if (($# >= limit)); then
      printf '\036%s %s %s\n' "$magic" "$token" \
        '{"type":"limit","limit":"processes","call":"fork"}' >&3
      exit 0
    fi
    read -r -t 0.01
    (($? > 128)) || exit 0 # the runner is gone: stdin ended
  done
}

# The frame as shell words, ended by a NUL: the token, the code, the process limit, then one
# line per file. jq reads one frame after another: a dummy one at start-up makes it touch all
# it needs then (under gVisor that first frame costs 40 ms of page faults), not on the request's
# path.
readonly to_shell='
  if type != "object" or .type != "execute" then "fail \("the frame is not an `execute` frame" | @sh)"
  else [
    "token=\(.token | tostring | @sh)",
    "code=\(.code // "" | tostring | @sh)",
    "processes=\(.limits.processes // 0 | tostring | @sh)",
    (.files // {} | to_entries[] | "write_file \(.key | @sh) " +
      if .value | has("base64") then "base64 \(.value.base64 | @sh)"
      else "text \(.value.text | tostring | @sh)" end)
  ] | join("\n") end + "\n\u0000"'
readonly warm_up='{"type":"execute","token":"-","code":"","files":{"a/b":{"text":"c"},"d":{"base64":"ZQ=="}}}'

write_file() { # path, kind (text|base64), content
  local path=$1 part parts
  IFS=/ read -r -a parts <<<"$path"
  [[ $path != /* ]] || fail "file path '$path' is not relative to /work"
  for part in "${parts[@]}"; do
    [[ $part != "" && $part != . && $part != .. ]] || fail "file path '$path' is not relative to /work"
  done
  [[ $path != */* ]] || mkdir -p "$work/${path%/*}" || fail "cannot make the directory of '$path'"
  if [[ $2 == base64 ]]; then
    printf '%s' "$3" | base64 -d >"$work/$path" 2>/dev/null || fail "file '$path' is not valid base64"
  else
    printf '%s' "$3" >"$work/$path" || fail "cannot write file '$path'"
  fi
}

limit=$(ulimit -u)
coproc JQ { exec jq --unbuffered -j "$to_shell" 2>&1; }
exec 5<&"${JQ[0]}" 6>&"${JQ[1]}" # bash forgets a coproc's descriptors once it has ended
eval "exec ${JQ[0]}<&- ${JQ[1]}>&-"
jq_pid=$JQ_PID
printf '%s\n' "$warm_up" >&6
IFS= read -r -d '' -u 5 script || fail "jq did not start: $script"
exec 4> >(exec 5<&- 6>&-; monitor)

send '{"type":"ready","protocol":1,"runner":"bash","features":["once","limit-report","binary-files"]}'

IFS=' ' read -r header length || fail "no frame header on stdin"
[[ $header == "$magic" && $length =~ ^[0-9]{1,10}$ ]] && ((length <= max_frame)) ||
  fail "not a $magic frame header"
frame=
if ((length > 0)); then
  IFS= read -r -d '' -N "$length" frame
fi
((${#frame} == length)) || fail "stdin ended inside the frame"
printf '%s' "$frame" >&6
exec 6>&-
unset frame
IFS= read -r -d '' -u 5 script || fail "bad frame: ${script:0:900}"
exec 5<&-
eval "$script"
cd "$work" || fail "no $work"
if ((processes > 0)) && [[ $limit == unlimited ]] || ((processes > 0 && processes < limit)); then
  ulimit -u "$processes" || fail "cannot lower the process limit to $processes"
  limit=$processes
fi
unset script processes
printf '%s\n%s\n' "$token" "$limit" >&4

bash -c "$code" /sandgate/main.sh 3>&- 4>&-
rc=$?
send "{\"type\":\"end\",\"exit_code\":$rc}"
exit "$rc"
