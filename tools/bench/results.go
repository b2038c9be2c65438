package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Figure is one measured figure.
type Figure struct {
	Phase string  `json:"phase"`
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// N is how many things were measured (signups, events, emails...).
	N int `json:"n"`
	// Latency percentiles, when the figure has them.
	P50 time.Duration `json:"p50,omitempty"`
	P99 time.Duration `json:"p99,omitempty"`
	Max time.Duration `json:"max,omitempty"`
	// Limit names the limit (Results.Limits) this figure is a fraction of.
	Limit    string  `json:"limit,omitempty"`
	Fraction float64 `json:"fraction,omitempty"`
	// Load is the 1-minute load average at the start → end of the
	// measurement (2 cores: 2.0 is a full machine).
	Load    string        `json:"load"`
	Elapsed time.Duration `json:"elapsed"`
	Note    string        `json:"note,omitempty"`
	// CPU is the CPU time the stack's processes used during the
	// measurement (from /proc/<pid>/stat).
	CPU   string `json:"cpu,omitempty"`
	Repro string `json:"repro,omitempty"`
}

// Results is everything one run measured.
type Results struct {
	Started  time.Time          `json:"started"`
	Finished time.Time          `json:"finished"`
	Config   Config             `json:"config"`
	Machine  Machine            `json:"machine"`
	Figures  []*Figure          `json:"figures"`
	Limits   map[string]float64 `json:"limits"`
	Cost     *CostReport        `json:"cost,omitempty"`
	Idle     *IdleReport        `json:"idle,omitempty"`
	Scale    *ScaleReport       `json:"scale,omitempty"`
	Profile  string             `json:"profile,omitempty"`
	Notes    []string           `json:"notes,omitempty"`
}

func (r *Results) add(f *Figure) *Figure {
	r.Figures = append(r.Figures, f)
	return f
}

func (r *Results) limit(name string, v float64) {
	if r.Limits == nil {
		r.Limits = map[string]float64{}
	}
	r.Limits[name] = v
}

func (r *Results) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *Results) fractions() {
	for _, f := range r.Figures {
		if l, ok := r.Limits[f.Limit]; ok && l > 0 {
			f.Fraction = f.Value / l
		}
	}
}

func (r *Results) save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, r.Started.UTC().Format("20060102T150405Z")+".json"), raw, 0o644)
}

// Machine describes where the run happened.
type Machine struct {
	Cores         int    `json:"cores"`
	MemTotal      string `json:"mem_total"`
	CPU           string `json:"cpu"`
	Kernel        string `json:"kernel"`
	Go            string `json:"go"`
	Temporal      string `json:"temporal"`
	Mailpit       string `json:"mailpit"`
	Postgres      string `json:"postgres"`
	LoadAtStart   string `json:"load_at_start"`
	UptimeAtStart string `json:"uptime_at_start"`
}

func machine(ctx context.Context, cfg Config) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), LoadAtStart: loadavg()}
	m.MemTotal = procField("/proc/meminfo", "MemTotal:")
	var kb int64
	if _, err := fmt.Sscan(m.MemTotal, &kb); err == nil {
		m.MemTotal = fmt.Sprintf("%.1f GiB (%s)", float64(kb)/(1<<20), m.MemTotal)
	}
	m.CPU = procField("/proc/cpuinfo", "model name")
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(raw))
	}
	if out, err := exec.Command("uptime").Output(); err == nil {
		m.UptimeAtStart = strings.TrimSpace(string(out))
	}
	m.Temporal = firstLine(exec.Command(cfg.TemporalBin, "--version").CombinedOutput())
	m.Mailpit = firstLine(exec.Command(cfg.MailpitBin, "version", "--no-release-check").CombinedOutput())
	if strings.Contains(m.Mailpit, "unknown flag") || m.Mailpit == "" {
		m.Mailpit = firstLine(exec.Command(cfg.MailpitBin, "version").CombinedOutput())
	}
	if conn, err := pgx.Connect(ctx, cfg.PostgresURL); err == nil {
		_ = conn.QueryRow(ctx, "SELECT version()").Scan(&m.Postgres)
		_ = conn.Close(ctx)
	}
	return m
}

func firstLine(out []byte, err error) string {
	s := strings.TrimSpace(string(out))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if err != nil && s == "" {
		return "unknown (" + err.Error() + ")"
	}
	return s
}

func procField(file, key string) string {
	raw, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(raw)) {
		if strings.HasPrefix(line, key) {
			_, v, _ := strings.Cut(line, ":")
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// loadavg is the 1-, 5- and 15-minute load averages.
func loadavg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func load1() string {
	f := strings.Fields(loadavg())
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// measure is a running measurement: start time and load.
type measure struct {
	t0   time.Time
	load string
	cpu  cpuSnap
}

func begin() measure { return measure{t0: time.Now(), load: load1(), cpu: snapCPU()} }

// cpuNow is the CPU line of the measurement so far: for figures whose
// verification (a Mailpit search, say) comes after the measured part and
// must not be billed to it.
func (m measure) cpuNow() string { return cpuSince(m.cpu, time.Since(m.t0)) }

// end fills Elapsed, Load and CPU of f (those not set already).
func (m measure) end(f *Figure) *Figure {
	if f.Elapsed == 0 {
		f.Elapsed = time.Since(m.t0)
	}
	f.Load = m.load + " → " + load1()
	if f.CPU == "" {
		f.CPU = cpuSince(m.cpu, time.Since(m.t0))
	}
	// The measured window in wall-clock time, to line up with an outside
	// profiler's samples (perf record -k realtime on the dev server).
	slog.Info("figure", "name", f.Name, "from", m.t0.UTC().Format(time.RFC3339Nano),
		"to", m.t0.Add(f.Elapsed).UTC().Format(time.RFC3339Nano))
	return f
}

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func latencies(f *Figure, ds []time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	f.P50, f.P99 = percentile(s, 0.50), percentile(s, 0.99)
	if len(s) > 0 {
		f.Max = s[len(s)-1]
	}
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// cpuPIDFiles name the stack's processes whose CPU time is accounted per
// measurement (set by Run from the data dir).
var cpuPIDFiles = map[string]string{}

// cpuSnap is CPU time (clock ticks, 100/s) per process group, and the
// machine's busy ticks (all processes, incl. other engineers' tests).
type cpuSnap map[string]int64

func procTicks(pid string) int64 {
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	s := string(raw)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	// A field that does not parse counts as no ticks.
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

func snapCPU() cpuSnap {
	s := cpuSnap{"harness": procTicks("self")}
	for name, file := range cpuPIDFiles {
		if raw, err := os.ReadFile(file); err == nil {
			s[name] = procTicks(strings.TrimSpace(string(raw)))
		}
	}
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			if e.Name()[0] < '0' || e.Name()[0] > '9' {
				continue
			}
			comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
			if err == nil && strings.TrimSpace(string(comm)) == "postgres" {
				s["postgres"] += procTicks(e.Name())
			}
		}
	}
	if raw, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(raw), "\n")
		f := strings.Fields(line)
		for i, v := range f[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			if i != 3 && i != 4 { // not idle, not iowait
				s["machine"] += n
			}
		}
	}
	return s
}

// cpuSince formats the CPU seconds each group used since s0, over wall.
func cpuSince(s0 cpuSnap, wall time.Duration) string {
	s1 := snapCPU()
	var parts []string
	for _, k := range []string{"temporal", "postgres", "mailpit", "worker", "harness", "machine"} {
		if _, ok := s1[k]; !ok {
			continue
		}
		d := max(0, float64(s1[k]-s0[k])/100)
		label := k
		switch k {
		case "postgres":
			label = "postgres (backends alive at the end; lower bound)"
		case "harness":
			label = "harness (API + in-process worker)"
		case "machine":
			label = "whole machine"
		}
		parts = append(parts, fmt.Sprintf("%s %.1f s (%.0f%% of a core)", label, d, 100*d/wall.Seconds()))
	}
	return strings.Join(parts, ", ")
}

// startProfile starts a CPU profile of the harness process into file; stop
// may be called more than once.
func startProfile(file string) (stop func(), err error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		})
	}, nil
}
