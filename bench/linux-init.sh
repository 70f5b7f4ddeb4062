#!/bin/sh
# /init of the Linux side of `cargo xtask bench`: Debian's kernel, booted directly by QEMU,
# runs one benchmark program from this initramfs and powers off. The program and its
# arguments come from the kernel command line as `bench.run=/bench/PROGRAM,ARG,ARG...`
# (commas for spaces). The xtask reads the console: the program's `BENCH {...}` lines, the
# `BENCH-INFO key=value` lines below and `BENCH-EXIT STATUS`.
#
# The same script is the /init of the KVM host and of its guest:
#   bench.modules=/lib/kvm/A.ko,/lib/kvm/B.ko   loaded first, in this order (the host: kvm_amd)
#   bench.vm=KERNEL,INITRD,MEM_MIB              the program runs in a guest of /bench/kvm-launcher
#                                               instead, with the same bench.run= (the host)
#   bench.end=reboot                            reboot instead of power off, for a machine with
#                                               no power-off device (the guest of the launcher)
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

run=""
modules=""
vm=""
end=poweroff
for option in $(cat /proc/cmdline); do
    case "$option" in
        bench.run=*) run="${option#bench.run=}" ;;
        bench.modules=*) modules="${option#bench.modules=}" ;;
        bench.vm=*) vm="${option#bench.vm=}" ;;
        bench.end=reboot) end=reboot ;;
    esac
done

for module in $(echo "$modules" | tr ',' ' '); do
    insmod "$module" || echo "BENCH-INFO error=cannot load $module"
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
# The mitigations the kernel chose for this CPU: they set the cost of entering the kernel.
for vulnerability in /sys/devices/system/cpu/vulnerabilities/*; do
    state=$(cat "$vulnerability")
    if [ "$state" != "Not affected" ]; then
        echo "BENCH-INFO vulnerability_${vulnerability##*/}=$state"
    fi
done
echo "BENCH-INFO uptime_at_init=$(cut -d ' ' -f 1 /proc/uptime)"
before=$(timer_interrupts)
if [ -n "$run" ] && [ -n "$vm" ]; then
    # The guest gets the same program; its lines come back prefixed with "[guest] ".
    /bench/kvm-launcher $(echo "$vm" | tr ',' ' ') console=ttyS0 quiet bench.end=reboot "bench.run=$run"
    status=$?
elif [ -n "$run" ]; then
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
$end -f
echo "BENCH-INFO error=$end -f failed"
exit 1
