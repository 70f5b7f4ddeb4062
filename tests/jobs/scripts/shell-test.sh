#!/bin/sh
# Runs under Debian's unmodified busybox-static on Manul: pipelines, redirections, command
# substitution, a loop, a subshell, and the usual tools. Each check compares output with the
# expected text; the script exits 0 only if every check passed (the job_exit event carries it).

failures=0
check() { # NAME EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then
        echo "ok   $1"
    else
        echo "FAIL $1: expected [$2], got [$3]"
        failures=$((failures + 1))
    fi
}

check "echo" "hello world" "$(echo hello world)"
check "pipeline" "3" "$(seq 1 3 | wc -l | tr -d ' ')"
check "sort" "c b a" "$(printf 'a\nc\nb\n' | sort -r | tr '\n' ' ' | sed 's/ $//')"
check "grep" "2" "$(printf 'x1\ny\nx2\n' | grep -c '^x')"
check "sed" "aXc" "$(echo abc | sed 's/b/X/')"
check "awk" "42" "$(echo '6 7' | awk '{ print $1 * $2 }')"
check "md5sum" "2b9792704368ec0253216182485a960b" "$(md5sum /data/known.txt | cut -d' ' -f1)"
check "cat+wc" "10" "$(cat /data/known.txt | wc -l | tr -d ' ')"
check "ls" "known.txt" "$(ls /data)"
check "subshell" "inner" "$(cd /tmp && (cd / && echo inner))"
check "cwd after subshell" "/" "$(pwd)"

# Redirections: write, append, read back, and stderr to a file.
echo first > /tmp/out.txt
echo second >> /tmp/out.txt
check "redirect" "first second" "$(cat < /tmp/out.txt | tr '\n' ' ' | sed 's/ $//')"
ls /nonexistent 2> /tmp/err.txt
check "stderr redirect" "1" "$(grep -c nonexistent /tmp/err.txt)"

# A loop with arithmetic, and exit statuses.
total=0
for i in $(seq 1 10); do total=$((total + i)); done
check "loop" "55" "$total"
false
check "false status" "1" "$?"
sh -c 'exit 7'
check "child status" "7" "$?"
check "head/tail" "012345" "$(head -n 3 /data/known.txt | tail -n 1 | cut -c1-6)"

# A background job waited for.
(sleep 0; echo bg > /tmp/bg.txt) &
wait
check "background+wait" "bg" "$(cat /tmp/bg.txt)"

rm /tmp/out.txt /tmp/err.txt /tmp/bg.txt
check "rm" "" "$(ls /tmp)"

echo "shell-test: $failures failure(s)"
exit $failures
