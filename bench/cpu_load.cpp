#include "cpu_load.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace mhac::bench {

namespace {
// Non-idle jiffies of the "cpu" line: user nice system (idle iowait) irq
// softirq steal. Steal counts as busy: a hypervisor neighbour also slows us.
bool read_proc_stat(double &busy_s) {
    std::FILE *f = std::fopen("/proc/stat", "r");
    if (!f) return false;
    unsigned long long v[8] = {};
    int n = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                        &v[3], &v[4], &v[5], &v[6], &v[7]);
    std::fclose(f);
    if (n != 8) return false;
    const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
    busy_s = static_cast<double>(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;
    return true;
}
}  // namespace

bool cpu_load_available() {
    double unused;
    return read_proc_stat(unused);
}

CpuSample sample_cpu() {
    CpuSample s;
    read_proc_stat(s.machine_busy_s);
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    s.self_s = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
               ru.ru_stime.tv_usec * 1e-6;
    s.wall_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    return s;
}

double foreign_load(const CpuSample &a, const CpuSample &b) {
    const double wall = b.wall_s - a.wall_s;
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (wall <= 0 || cpus <= 0) return 0;
    const double other = (b.machine_busy_s - a.machine_busy_s) - (b.self_s - a.self_s);
    return std::clamp(other / (wall * static_cast<double>(cpus)), 0.0, 1.0);
}

}  // namespace mhac::bench
