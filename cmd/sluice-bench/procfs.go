package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on Linux).
const clockTicks = 100

// procStat is what the benchmark reads from /proc/PID/stat.
type procStat struct {
	PPID int
	// CPUTicks is utime+stime, in clock ticks.
	CPUTicks int64
}

// parseStat reads a /proc/PID/stat line. The command (field 2) is in parentheses and may hold
// spaces and parentheses itself, so the fields are counted after its last ')'.
func parseStat(line string) (procStat, error) {
	end := strings.LastIndexByte(line, ')')
	if end < 0 {
		return procStat{}, fmt.Errorf("parse /proc stat: no ')' closing the command in %q", line)
	}
	// After ") ": state(3) ppid(4) ... utime(14) stime(15).
	f := strings.Fields(line[end+1:])
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("parse /proc stat: %d fields after the command, want at least 13", len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("parse /proc stat: ppid %q: %w", f[1], err)
	}
	utime, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parse /proc stat: utime %q: %w", f[11], err)
	}
	stime, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parse /proc stat: stime %q: %w", f[12], err)
	}
	return procStat{PPID: ppid, CPUTicks: utime + stime}, nil
}

// readStat reads /proc/PID/stat.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}
	return parseStat(string(b))
}

// memStatus is the memory of a process from /proc/PID/status, in kB.
type memStatus struct {
	RSSKB, HWMKB int64
}

// parseStatus reads VmRSS and VmHWM (peak RSS) from /proc/PID/status.
func parseStatus(text string) (memStatus, error) {
	var m memStatus
	var seenRSS, seenHWM bool
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("parse /proc status: %s %q is not \"N kB\"", key, strings.TrimSpace(val))
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("parse /proc status: %s: %w", key, err)
		}
		if key == "VmRSS" {
			m.RSSKB, seenRSS = n, true
		} else {
			m.HWMKB, seenHWM = n, true
		}
	}
	if !seenRSS || !seenHWM {
		return m, fmt.Errorf("parse /proc status: VmRSS or VmHWM missing (a kernel thread or an exited process)")
	}
	return m, nil
}

// readStatus reads /proc/PID/status.
func readStatus(pid int) (memStatus, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	return parseStatus(string(b))
}

// withChildren returns pid and the processes whose parent it is (nginx's workers).
func withChildren(pid int) []int {
	pids := []int{pid}
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		st, err := parseStat(string(b))
		if err != nil || st.PPID != pid {
			continue
		}
		if child, err := strconv.Atoi(filepath.Base(filepath.Dir(d))); err == nil {
			pids = append(pids, child)
		}
	}
	return pids
}

// resetPeakRSS sets the peak RSS (VmHWM) of pids back to their current RSS, by writing 5 to
// /proc/PID/clear_refs (Linux 4.0 and later; it needs the right to write there, which the
// benchmark has over its own children). A failure leaves the lifetime peak in place.
func resetPeakRSS(pids []int) {
	for _, pid := range pids {
		_ = os.WriteFile(filepath.Join("/proc", strconv.Itoa(pid), "clear_refs"), []byte("5"), 0)
	}
}

// usage is the summed CPU time and memory of a group of processes.
type usage struct {
	CPUSeconds float64
	RSSKB      int64
	HWMKB      int64
}

// measure sums the CPU time and memory of pids.
func measure(pids []int) (usage, error) {
	var u usage
	for _, pid := range pids {
		st, err := readStat(pid)
		if err != nil {
			return u, err
		}
		m, err := readStatus(pid)
		if err != nil {
			return u, err
		}
		u.CPUSeconds += float64(st.CPUTicks) / clockTicks
		u.RSSKB += m.RSSKB
		u.HWMKB += m.HWMKB
	}
	return u, nil
}

// cpuSeconds returns the CPU time of each of pids that can be read; a process that has
// exited is left out.
func cpuSeconds(pids []int) map[int]float64 {
	out := make(map[int]float64, len(pids))
	for _, pid := range pids {
		if st, err := readStat(pid); err == nil {
			out[pid] = float64(st.CPUTicks) / clockTicks
		}
	}
	return out
}

// cpuSecondsSince sums the CPU time used since before by the processes read both times.
func cpuSecondsSince(before, after map[int]float64) float64 {
	var sum float64
	for pid, a := range after {
		if b, ok := before[pid]; ok && a >= b {
			sum += a - b
		}
	}
	return sum
}

// parseCPUBusy reads the machine's busy CPU time, in seconds summed over its CPUs, from the
// "cpu" line of /proc/stat: every state but idle and iowait. (guest time is already counted
// in user time, so it is left out.)
func parseCPUBusy(text string) (float64, error) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || f[0] != "cpu" {
			continue
		}
		var busy int64
		// user nice system idle iowait irq softirq steal
		for i, v := range f[1:9] {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse /proc/stat: %q: %w", v, err)
			}
			if i != 3 && i != 4 {
				busy += n
			}
		}
		return float64(busy) / clockTicks, nil
	}
	return 0, fmt.Errorf("parse /proc/stat: no cpu line with 8 counters")
}

// readCPUBusy reads the machine's busy CPU seconds from /proc/stat.
func readCPUBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read the machine's CPU time: %w", err)
	}
	return parseCPUBusy(string(b))
}

// parseLoadAvg reads the 1, 5 and 15 minute load averages from /proc/loadavg.
func parseLoadAvg(text string) ([3]float64, error) {
	var l [3]float64
	f := strings.Fields(text)
	if len(f) < 3 {
		return l, fmt.Errorf("parse /proc/loadavg %q: want three load averages", text)
	}
	for i := range l {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return l, fmt.Errorf("parse /proc/loadavg: field %d: %w", i+1, err)
		}
		l[i] = v
	}
	return l, nil
}

// parseCPUModel returns the first "model name" of /proc/cpuinfo.
func parseCPUModel(text string) string {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if key, val, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(val)
		}
	}
	return "unknown"
}
