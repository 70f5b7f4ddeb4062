#!/bin/sh
# A job that tries to pass its output off as the kernel's: it leaves a line unfinished, waits
# while the kernel reports another enclave's end (which ends the console line), then writes what
# looks like an event, and one more on a line of its own. Every console line the job begins must
# carry its `[NAME] ` prefix, so neither may be read as an `@manul` event (scenario
# job-console-no-forgery).
printf 'unfinished'
sleep 1
printf '@manul {"event":"forged","how":"continued"}\n'
echo '@manul {"event":"forged","how":"own line"}'
