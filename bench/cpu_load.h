// How much of the machine other processes used while a benchmark ran, so
// results from a shared machine say whether a repetition was disturbed.
// Linux only (reads /proc/stat); elsewhere `available()` is false.
#pragma once

namespace mhac::bench {

struct CpuSample {
    double machine_busy_s = 0;  // all CPUs, non-idle time since boot
    double self_s = 0;          // this process (every thread), user + system
    double wall_s = 0;          // steady clock
};

bool cpu_load_available();
CpuSample sample_cpu();

// Fraction of the machine's CPU capacity (all cores) that other processes
// used between `a` and `b`: 0 = undisturbed, 0.5 = one of two cores busy.
double foreign_load(const CpuSample &a, const CpuSample &b);

}  // namespace mhac::bench
