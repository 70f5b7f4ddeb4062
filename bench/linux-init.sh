#!/bin/sh
# /init of the Linux side of `cargo xtask bench`: Debian's kernel, booted directly by QEMU,
# runs one benchmark program from this initramfs and powers off. The program and its
# arguments come from the kernel command line as `bench.run=/bench/PROGRAM,ARG,ARG...`
# (commas for spaces). The xtask reads the console: the program's `BENCH {...}` lines, the
# `BENCH-INFO key=value` lines below and `BENCH-EXIT STATUS`.
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

run=""
for option in $(cat /proc/cmdline); do
    case "$option" in
        bench.run=*) run="${option#bench.run=}" ;;
    esac
done

# Local timer interrupts of CPU 0 (the first number of the LOC line of /proc/interrupts).
timer_interrupts() {
    while read -r name count rest; do
        if [ "$name" = "LOC:" ]; then
            echo "$count"
        fi
    done < /proc/interrupts
}

echo "BENCH-INFO kernel=$(uname -r)"
echo "BENCH-INFO online_cpus=$(cat /sys/devices/system/cpu/online)"
echo "BENCH-INFO clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
echo "BENCH-INFO uptime_at_init=$(cut -d ' ' -f 1 /proc/uptime)"
before=$(timer_interrupts)
if [ -n "$run" ]; then
    # Word splitting of the unquoted expansion turns the commas into arguments.
    $(echo "$run" | tr ',' ' ')
    status=$?
else
    echo "BENCH-INFO error=no bench.run= on the kernel command line"
    status=127
fi
after=$(timer_interrupts)
echo "BENCH-INFO timer_interrupts=$((after - before))"
echo "BENCH-EXIT $status"
poweroff -f
echo "BENCH-INFO error=poweroff -f failed"
exit 1
