package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestParseStat(t *testing.T) {
	// A command with spaces and a ')' of its own; utime 1234, stime 56.
	line := "4242 (nginx: worker (x)) S 4241 4241 4241 0 -1 4194624 100 0 0 0 1234 56 0 0 20 0 1 0 99 1000 200 18446744073709551615"
	st, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if st.PPID != 4241 || st.CPUTicks != 1290 {
		t.Errorf("parseStat = %+v, want ppid 4241 and 1290 ticks", st)
	}
	for _, bad := range []string{"", "12 (x S 1", "12 (x) S 1 2 3", "12 (x) S p 1 1 0 -1 0 0 0 0 0 1 2 0"} {
		if _, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	text := "Name:\tsluice-proxy\nVmPeak:\t 1300000 kB\nVmHWM:\t   35208 kB\nVmRSS:\t   30120 kB\nThreads:\t8\n"
	m, err := parseStatus(text)
	if err != nil {
		t.Fatal(err)
	}
	if m.HWMKB != 35208 || m.RSSKB != 30120 {
		t.Errorf("parseStatus = %+v", m)
	}
	if _, err := parseStatus("Name:\tkthreadd\n"); err == nil {
		t.Error("a status without VmRSS parsed")
	}
	if _, err := parseStatus("VmHWM:\t1 MB\nVmRSS:\t1 kB\n"); err == nil || !strings.Contains(err.Error(), "VmHWM") {
		t.Errorf("a status in MB: error %v, want one naming VmHWM", err)
	}
}

// The parsers read this very process from /proc, as they read the proxies.
func TestMeasureSelf(t *testing.T) {
	u, err := measure([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if u.RSSKB <= 0 || u.HWMKB < u.RSSKB || u.CPUSeconds < 0 {
		t.Errorf("measure(self) = %+v: want RSS > 0, peak ≥ RSS, CPU ≥ 0", u)
	}
	if pids := withChildren(os.Getpid()); len(pids) == 0 || pids[0] != os.Getpid() {
		t.Errorf("withChildren(self) = %v, want self first", pids)
	}
}

func TestParseLoadAvgAndCPUModel(t *testing.T) {
	l, err := parseLoadAvg("5.12 3.40 2.01 3/812 99999\n")
	if err != nil || l != [3]float64{5.12, 3.40, 2.01} {
		t.Errorf("parseLoadAvg = %v, %v", l, err)
	}
	if _, err := parseLoadAvg("5.12"); err == nil {
		t.Error("a short loadavg parsed")
	}
	info := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
	if got := parseCPUModel(info); got != "AMD EPYC 7B13" {
		t.Errorf("parseCPUModel = %q", got)
	}
	if got := parseCPUModel("processor: 0\n"); got != "unknown" {
		t.Errorf("parseCPUModel without a model = %q", got)
	}
}

func TestParseCPUBusy(t *testing.T) {
	// user 100, nice 5, system 40, idle 900, iowait 50, irq 1, softirq 4, steal 0: 150 ticks busy.
	text := "cpu  100 5 40 900 50 1 4 0 0 0\ncpu0 50 2 20 450 25 1 2 0 0 0\nintr 1 2 3\n"
	got, err := parseCPUBusy(text)
	if err != nil || got != 1.5 {
		t.Errorf("parseCPUBusy = %v, %v; want 1.5 s", got, err)
	}
	for _, bad := range []string{"", "cpu 1 2 3\n", "cpu a 1 2 3 4 5 6 7\n"} {
		if _, err := parseCPUBusy(bad); err == nil {
			t.Errorf("parseCPUBusy(%q) succeeded, want an error", bad)
		}
	}
}

// Resetting the peak RSS brings VmHWM back to the current RSS, so that a cell's peak is its own.
// 96 MiB mapped, touched and unmapped outside Go's heap raise the peak and leave the RSS.
func TestResetPeakRSS(t *testing.T) {
	const size = 96 << 20
	m, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < size; i += 4096 {
		m[i] = 1
	}
	if err := syscall.Munmap(m); err != nil {
		t.Fatal(err)
	}
	before, err := readStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if before.HWMKB < before.RSSKB+64<<10 {
		t.Fatalf("after 96 MiB were touched and unmapped, the peak is %d kB and the RSS %d kB: want the peak 64 MiB above", before.HWMKB, before.RSSKB)
	}
	resetPeakRSS([]int{os.Getpid()})
	after, err := readStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.HWMKB > after.RSSKB+16<<10 {
		t.Errorf("after the reset the peak is %d kB with %d kB resident; want the peak near the RSS (it was %d kB)", after.HWMKB, after.RSSKB, before.HWMKB)
	}
}
