// Package undo is crash recovery for runs: the undo journal a run keeps of everything it
// creates that could outlive it, and the healing of a dead run's leftovers.
//
// Before the harness creates anything that could outlive it (a child process, a proxy, a
// fault, a container) it writes what it is about to create into an undo record,
// atomically (a temporary file renamed over the old one), and removes the record after a
// clean finish. A record left behind means its harness died without cleaning up
// (SIGKILL, OOM killer, power loss); the next faultline command heals it: it kills the
// recorded processes (checked against their start times in /proc so that a recycled pid
// is never signalled) with their process groups, including the members of a group whose
// leader already exited, and has a container runtime's leftovers removed.
//
// The package knows nothing of scenarios or of how a run is driven, so the commands that
// only heal depend on it alone.
package undo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/runtime"
)

const (
	// DirEnv overrides where undo records live (DefaultDir).
	DirEnv = "FAULTLINE_UNDO_DIR"
	// MarkerEnv is set in every child process's environment to its run's id, so a
	// child whose pid never reached the record (the harness died between fork and write)
	// is still found by scanning /proc.
	MarkerEnv = "FAULTLINE_UNDO_RUN"
	// Version is the record format's version.
	Version = 1
)

// killWait bounds how long healing waits for a killed process to disappear.
const killWait = 5 * time.Second

// DefaultDir is where undo records live: $FAULTLINE_UNDO_DIR, else
// $XDG_STATE_HOME/faultline/undo, else ~/.local/state/faultline/undo, else
// .faultline/undo under the working directory. One place per user, not per working
// directory, so that any faultline command heals a run started from anywhere.
func DefaultDir() string {
	if d := os.Getenv(DirEnv); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "faultline", "undo")
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return filepath.Join(h, ".local", "state", "faultline", "undo")
	}
	return filepath.Join(".faultline", "undo")
}

// Record is everything one run created that could outlive its harness.
type Record struct {
	Version int    `json:"version"`
	RunID   string `json:"run_id"`
	RunDir  string `json:"run_dir"`
	// Runtime is where the system runs: "local" (children die with the harness through
	// Pdeathsig, proxies are in the harness's memory) or "docker" (containers outlive it).
	Runtime string `json:"runtime"`
	// Harness identifies the process that owns the record; while it lives the run is in
	// progress and nobody else heals it.
	Harness Process   `json:"harness"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Processes are the children started, with their start times so a recycled pid is
	// never killed.
	Processes []Process `json:"processes,omitempty"`
	// Proxies are the Toxiproxy proxies on the run's links. On the local runtime they live
	// in the harness's memory, so a dead harness took them and their toxics with it; on
	// Docker they live in the run's Toxiproxy container, which the container cleaner
	// removes with the rest.
	Proxies []Proxy `json:"proxies,omitempty"`
	// Faults are the scheduled faults with the time each must be healed by: the
	// dead-man deadline that holds even if the harness is gone.
	Faults []Fault `json:"faults,omitempty"`
	// Containers and Networks are what a container runtime created, labelled with RunID.
	Containers []string `json:"containers,omitempty"`
	Networks   []string `json:"networks,omitempty"`
	// Namespaces are the Kubernetes namespaces a run created: deleting one deletes
	// everything the run put in it.
	Namespaces []Namespace `json:"namespaces,omitempty"`
}

// Namespace is one Kubernetes namespace of a run, with how to reach its cluster again
// (never the credentials themselves: those stay in the kubeconfig).
type Namespace struct {
	Name string `json:"name"`
	// Kubeconfig is the kubeconfig file the run used ("" for the default loading rules:
	// $KUBECONFIG, then ~/.kube/config), Context its context ("" for the current one).
	Kubeconfig string `json:"kubeconfig,omitempty"`
	Context    string `json:"context,omitempty"`
}

// NamespaceCleaner deletes a run's namespaces (for example with
// runtime/kubernetes/lease.DeleteRun) and names what it deleted.
type NamespaceCleaner func(ctx context.Context, runID string, namespaces []Namespace) ([]string, error)

// Process is one process a run started (or the harness itself).
type Process struct {
	Name string `json:"name"`
	PID  int    `json:"pid,omitempty"` // 0 while starting
	// Start is the process's start time in clock ticks since boot (/proc/PID/stat field
	// 22): a pid with another start time is another process.
	Start uint64 `json:"start,omitempty"`
	// Paused is true from just before a SIGSTOP until just after the SIGCONT.
	Paused bool `json:"paused,omitempty"`
}

// Proxy is one fault proxy.
type Proxy struct {
	Name   string `json:"name"`
	Listen string `json:"listen"`
}

// Fault is one scheduled fault.
type Fault struct {
	Name    string    `json:"name"`
	Type    string    `json:"type"`
	Targets []string  `json:"targets,omitempty"`
	From    time.Time `json:"from"`
	HealBy  time.Time `json:"heal_by"`
}

// Journal keeps one run's undo record on disk up to date. It is safe for concurrent use.
type Journal struct {
	path string
	mu   sync.Mutex
	rec  Record
	// cleaner removes a container runtime's leftovers when the record is closed.
	cleaner func(ctx context.Context, runID string) ([]string, error)
	// nsCleaner deletes the recorded namespaces when the record is closed.
	nsCleaner NamespaceCleaner
}

// SetNamespaceCleaner makes Close delete the namespaces still recorded (see
// WithNamespaceCleaner) before it drops the record; without one, Close keeps a record
// that names namespaces.
func (j *Journal) SetNamespaceCleaner(fn NamespaceCleaner) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.nsCleaner = fn
}

// RecordNamespace records a namespace before it is created.
func (j *Journal) RecordNamespace(ns Namespace) error {
	return j.Update(func(r *Record) {
		if !slices.ContainsFunc(r.Namespaces, func(n Namespace) bool { return n.Name == ns.Name }) {
			r.Namespaces = append(r.Namespaces, ns)
		}
	})
}

// ForgetNamespace drops a namespace from the record once the run deleted it itself.
func (j *Journal) ForgetNamespace(name string) error {
	return j.Update(func(r *Record) {
		r.Namespaces = slices.DeleteFunc(r.Namespaces, func(n Namespace) bool { return n.Name == name })
	})
}

// SetContainerCleaner makes Close remove whatever a container runtime left of the run
// (see WithContainerCleaner) before it drops the record.
func (j *Journal) SetContainerCleaner(fn func(ctx context.Context, runID string) ([]string, error)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.cleaner = fn
}

// OpenJournal writes a new record for runID in dir, owned by this process.
func OpenJournal(dir, runID, runDir, rt string) (*Journal, error) {
	if runID == "" || strings.ContainsAny(runID, "/\x00") {
		return nil, fmt.Errorf("open undo journal: bad run id %q", runID)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open undo journal: %w", err)
	}
	self, err := Identify(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("open undo journal: %w", err)
	}
	self.Name = "harness"
	now := time.Now().UTC()
	j := &Journal{path: filepath.Join(dir, runID+".json"), rec: Record{
		Version: Version, RunID: runID, RunDir: runDir, Runtime: rt, Harness: self, Created: now, Updated: now,
	}}
	if err := j.Update(func(*Record) {}); err != nil {
		return nil, err
	}
	return j, nil
}

// Path is the record's file.
func (j *Journal) Path() string { return j.path }

// Record returns a copy of the record as last written.
func (j *Journal) Record() Record {
	j.mu.Lock()
	defer j.mu.Unlock()
	return cloneRecord(j.rec)
}

// Update changes the record and writes it atomically before returning, so the change is
// on disk before the action it announces.
func (j *Journal) Update(fn func(*Record)) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	fn(&j.rec)
	j.rec.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(j.rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode undo record: %w", err)
	}
	// No fsync: the record must survive the harness's death, which the page cache does;
	// after a machine crash there is nothing left running to heal.
	tmp := j.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write undo record: %w", err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return fmt.Errorf("write undo record: %w", err)
	}
	return nil
}

// Close removes the record: the run finished and healed everything itself. It first
// heals whatever the record still names, so a child that outlived a failed stop does not
// survive the record that points at it.
func (j *Journal) Close(ctx context.Context) error {
	rec := j.Record()
	j.mu.Lock()
	cleaner, nsCleaner := j.cleaner, j.nsCleaner
	j.mu.Unlock()
	rep := healRecord(ctx, &rec, healConfig{own: true, cleaner: cleaner, nsCleaner: nsCleaner})
	if rep.Err != nil {
		return fmt.Errorf("close undo journal: %w (record kept at %s)", rep.Err, j.path)
	}
	if err := os.Remove(j.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("close undo journal: %w", err)
	}
	return nil
}

func cloneRecord(r Record) Record {
	r.Processes = slices.Clone(r.Processes)
	r.Proxies = slices.Clone(r.Proxies)
	r.Faults = slices.Clone(r.Faults)
	r.Containers = slices.Clone(r.Containers)
	r.Networks = slices.Clone(r.Networks)
	r.Namespaces = slices.Clone(r.Namespaces)
	return r
}

func (j *Journal) setProcess(p Process) error {
	return j.Update(func(r *Record) {
		for i := range r.Processes {
			if r.Processes[i].Name == p.Name && (r.Processes[i].PID == 0 || r.Processes[i].PID == p.PID) {
				r.Processes[i] = p
				return
			}
		}
		r.Processes = append(r.Processes, p)
	})
}

// RecordLinks records every proxy of links.
func (j *Journal) RecordLinks(links *faults.Links) error {
	var ps []Proxy
	for _, l := range links.All() {
		addr, err := links.ListenAddr(l.Name())
		if err != nil {
			continue
		}
		ps = append(ps, Proxy{Name: l.Name(), Listen: addr})
	}
	return j.Update(func(r *Record) { r.Proxies = ps })
}

// RecordFaults records the faults the timeline will inject, each with its deadline.
func (j *Journal) RecordFaults(fs []Fault) error {
	return j.Update(func(r *Record) { r.Faults = slices.Clone(fs) })
}

// Identify returns pid with its start time, or an error if it does not exist.
func Identify(pid int) (Process, error) {
	start, _, err := procStat(pid)
	if err != nil {
		return Process{}, err
	}
	return Process{PID: pid, Start: start}, nil
}

// procStat reads a process's start time (field 22) and state (field 3) from
// /proc/PID/stat. The command name (field 2) may hold spaces and parentheses, so fields
// are counted from the last ')'.
func procStat(pid int) (start uint64, state byte, err error) {
	start, state, _, err = procStatGroup(pid)
	return start, state, err
}

// procStatGroup is procStat with the process group id (field 5).
func procStatGroup(pid int) (start uint64, state byte, pgrp int, err error) {
	if pid <= 0 {
		return 0, 0, 0, fmt.Errorf("read process %d: not a pid", pid)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read process %d: %w", pid, err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("read process %d: malformed stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, 0, fmt.Errorf("read process %d: malformed stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read process %d: parse start time: %w", pid, err)
	}
	pgrp, err = strconv.Atoi(f[2])
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read process %d: parse process group: %w", pid, err)
	}
	return start, f[0][0], pgrp, nil
}

// groupMembers lists the live members of the process group p leads, other than p. The
// group outlives a leader that exited while members still run (a shell that started a
// worker, a server that forked), and a component is killed as a whole group, so its
// members are the component's too. The kernel does not hand out a pid that is still
// some group's id, so a group with live members whose id is p's pid is p's group, as long
// as the pid is not now a different process and the members started after p did.
func (p Process) groupMembers() []Process {
	if p.PID <= 0 {
		return nil
	}
	if start, _, err := procStat(p.PID); err == nil && start != p.Start {
		return nil // the pid is someone else's now
	}
	var out []Process
	for _, pid := range otherPIDs() {
		if pid == p.PID {
			continue
		}
		start, state, pgrp, err := procStatGroup(pid)
		if err != nil || pgrp != p.PID || start < p.Start || state == 'Z' || state == 'X' {
			continue
		}
		out = append(out, Process{Name: p.Name + " group member", PID: pid, Start: start})
	}
	return out
}

// otherPIDs lists the pids in /proc other than this process's own; none when /proc
// cannot be read.
func otherPIDs() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid != self {
			out = append(out, pid)
		}
	}
	return out
}

// Alive reports whether p still runs: same pid, same start time, not a zombie.
func (p Process) Alive() bool {
	start, state, err := procStat(p.PID)
	return err == nil && start == p.Start && state != 'Z' && state != 'X'
}

// Stopped reports whether p is alive and stopped (SIGSTOP: state T).
func (p Process) Stopped() bool {
	start, state, err := procStat(p.PID)
	return err == nil && start == p.Start && (state == 'T' || state == 't')
}

// kill SIGKILLs p and its process group, but only if p is still the process recorded:
// the pid is pinned with a pidfd before its start time is compared, so a recycled pid is
// never signalled. It reports whether p was alive.
func (p Process) kill() (bool, error) {
	proc, err := os.FindProcess(p.PID)
	if err != nil {
		return false, nil
	}
	defer func() { _ = proc.Release() }()
	if !p.Alive() {
		return false, nil
	}
	// The leader is alive, so its group id cannot have been reused: the group is ours.
	if pgid, err := syscall.Getpgid(p.PID); err == nil && pgid == p.PID {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	if err := proc.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return true, fmt.Errorf("kill %s (pid %d): %w", p.Name, p.PID, err)
	}
	return true, nil
}

// waitGone polls until none of ps is alive or ctx (at most killWait) ends.
func waitGone(ctx context.Context, ps []Process) error {
	ctx, cancel := context.WithTimeout(ctx, killWait)
	defer cancel()
	for {
		var left []string
		for _, p := range ps {
			if p.Alive() {
				left = append(left, fmt.Sprintf("%s (pid %d)", p.Name, p.PID))
			}
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for processes to die: still alive: %s", strings.Join(left, ", "))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Marked lists the live processes whose environment carries MarkerEnv=runID: the
// run's children, including any whose pid never reached the record.
func Marked(runID string) []Process {
	want := []byte(MarkerEnv + "=" + runID + "\x00")
	var out []Process
	for _, pid := range otherPIDs() {
		env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		if err != nil || !(bytes.HasPrefix(env, want) || bytes.Contains(env, append([]byte{0}, want...))) {
			continue
		}
		p, err := Identify(pid)
		if err != nil || !p.Alive() {
			continue
		}
		p.Name = "marked"
		out = append(out, p)
	}
	return out
}

// HealReport says what healing one record did.
type HealReport struct {
	RunID  string
	Record string // the record's file
	// InProgress is true when the record's harness is alive: the run is not left over,
	// so nothing was touched.
	InProgress bool
	// Killed names the processes that were still alive and were killed; Resumed those of
	// them that were stopped (SIGSTOP) first.
	Killed, Resumed []string
	// Vanished counts proxies and faults that died with the harness (local runtime).
	Proxies, Faults int
	// Containers names what the container cleaner removed.
	Containers []string
	// Namespaces names what the namespace cleaner deleted.
	Namespaces []string
	// Err is what could not be healed; the record is kept when it is set.
	Err error
}

// Empty reports whether healing found nothing alive to act on.
func (r HealReport) Empty() bool {
	return len(r.Killed) == 0 && len(r.Containers) == 0 && len(r.Namespaces) == 0
}

// String is a one-line summary.
func (r HealReport) String() string {
	if r.InProgress {
		return fmt.Sprintf("run %s is still in progress (its harness is alive); left alone", r.RunID)
	}
	var parts []string
	if len(r.Killed) > 0 {
		parts = append(parts, fmt.Sprintf("killed %d process(es) (%s)", len(r.Killed), strings.Join(r.Killed, ", ")))
	}
	if len(r.Resumed) > 0 {
		parts = append(parts, fmt.Sprintf("%d of them stopped", len(r.Resumed)))
	}
	if len(r.Containers) > 0 {
		parts = append(parts, fmt.Sprintf("removed %s", strings.Join(r.Containers, ", ")))
	}
	if len(r.Namespaces) > 0 {
		parts = append(parts, fmt.Sprintf("deleted %s", strings.Join(r.Namespaces, ", ")))
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing was left running")
	}
	if r.Proxies > 0 || r.Faults > 0 {
		parts = append(parts, fmt.Sprintf("%d proxies and %d scheduled faults went with the harness", r.Proxies, r.Faults))
	}
	s := fmt.Sprintf("healed run %s: %s", r.RunID, strings.Join(parts, "; "))
	if r.Err != nil {
		s += fmt.Sprintf("; NOT healed: %v (record kept at %s)", r.Err, r.Record)
	}
	return s
}

// HealOption configures HealPending.
type HealOption func(*healConfig)

type healConfig struct {
	force     bool
	own       bool // the record's harness heals its own record on the way out
	cleaner   func(ctx context.Context, runID string) ([]string, error)
	nsCleaner NamespaceCleaner
}

// WithNamespaceCleaner deletes the Kubernetes namespaces a record names; records that
// name some are kept until it succeeds.
func WithNamespaceCleaner(fn NamespaceCleaner) HealOption {
	return func(c *healConfig) { c.nsCleaner = fn }
}

// WithForce heals records whose harness is still alive too, killing that harness first:
// for a harness that hangs or was stopped.
func WithForce() HealOption { return func(c *healConfig) { c.force = true } }

// WithContainerCleaner removes a container runtime's leftovers of a run (for example
// runtime/docker.Clean); records of such runs are kept until it succeeds.
func WithContainerCleaner(fn func(ctx context.Context, runID string) ([]string, error)) HealOption {
	return func(c *healConfig) { c.cleaner = fn }
}

// Pending lists the undo records in dir. It is cheap when there are none (one ReadDir),
// which is what lets every faultline command check for leftovers.
func Pending(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list undo records: %w", err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// Read reads one record.
func Read(path string) (Record, error) {
	var rec Record
	b, err := os.ReadFile(path)
	if err != nil {
		return rec, fmt.Errorf("read undo record: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("read undo record %s: %w", path, err)
	}
	if rec.Version > Version {
		return rec, fmt.Errorf("read undo record %s: version %d is newer than this faultline (%d)", path, rec.Version, Version)
	}
	if rec.RunID == "" {
		rec.RunID = strings.TrimSuffix(filepath.Base(path), ".json")
	}
	return rec, nil
}

// HealPending heals every record in dir whose harness is dead (every record WithForce)
// and removes the records it healed completely. A record that cannot be read is reported
// and kept.
func HealPending(ctx context.Context, dir string, opts ...HealOption) ([]HealReport, error) {
	var cfg healConfig
	for _, o := range opts {
		o(&cfg)
	}
	paths, err := Pending(dir)
	if err != nil {
		return nil, err
	}
	removeStaleTemps(dir)
	var reps []HealReport
	var errs []error
	for _, path := range paths {
		rec, err := Read(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // healed by a concurrent command
			}
			errs = append(errs, err)
			continue
		}
		rep := healRecord(ctx, &rec, cfg)
		rep.Record = path
		if !rep.InProgress && rep.Err == nil {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				rep.Err = fmt.Errorf("remove undo record: %w", err)
			}
			_ = os.Remove(path + ".tmp")
		}
		if rep.Err != nil {
			errs = append(errs, fmt.Errorf("heal run %s: %w", rep.RunID, rep.Err))
		}
		reps = append(reps, rep)
	}
	return reps, errors.Join(errs...)
}

// removeStaleTemps removes the half-written records of dead harnesses whose record
// never made it to its final name: a harness killed during its very first write had
// created nothing yet.
func removeStaleTemps(dir string) {
	tmps, _ := filepath.Glob(filepath.Join(dir, "*.json.tmp"))
	for _, tmp := range tmps {
		if _, err := os.Stat(strings.TrimSuffix(tmp, ".tmp")); err == nil {
			continue // its record is healed (and the temp removed) with it
		}
		rec, err := Read(tmp)
		switch {
		case err == nil && rec.Harness.Alive():
			continue // being written right now
		case err != nil:
			// Unreadable: maybe half-written by a live harness this instant; only an old
			// one is certainly abandoned.
			if st, serr := os.Stat(tmp); serr != nil || time.Since(st.ModTime()) < time.Minute {
				continue
			}
		}
		_ = os.Remove(tmp)
	}
}

// healRecord heals one record. The record's own harness may call it (Journal.Close);
// anyone else heals only a record whose harness is dead, unless forced.
func healRecord(ctx context.Context, rec *Record, cfg healConfig) HealReport {
	rep := HealReport{RunID: rec.RunID}
	self := cfg.own
	if !self && rec.Harness.PID > 0 && rec.Harness.Alive() {
		// A run of this very process (a program embedding the harness) is never forced.
		if !cfg.force || rec.Harness.PID == os.Getpid() {
			rep.InProgress = true
			return rep
		}
		h := rec.Harness
		h.Name = "harness"
		if _, err := h.kill(); err != nil {
			rep.Err = err
			return rep
		}
		if err := waitGone(ctx, []Process{h}); err != nil {
			rep.Err = err
			return rep
		}
		rep.Killed = append(rep.Killed, fmt.Sprintf("harness (pid %d)", h.PID))
	}
	var errs []error
	procs := slices.Clone(rec.Processes)
	seen := map[int]bool{}
	for _, p := range procs {
		seen[p.PID] = true
	}
	for _, m := range Marked(rec.RunID) {
		if !seen[m.PID] {
			procs = append(procs, m)
		}
	}
	var killed []Process
	for _, p := range procs {
		if p.PID <= 0 {
			continue
		}
		// The members are listed before the leader dies: killing a live leader signals
		// its group, and a dead leader's members are found by the group id alone.
		members := p.groupMembers()
		for _, q := range append([]Process{p}, members...) {
			stopped := q.Stopped()
			ok, err := q.kill()
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				killed = append(killed, q)
				rep.Killed = append(rep.Killed, fmt.Sprintf("%s (pid %d)", q.Name, q.PID))
				if stopped {
					rep.Resumed = append(rep.Resumed, q.Name)
				}
			}
		}
	}
	if err := waitGone(ctx, killed); err != nil {
		errs = append(errs, err)
	}
	// A group that still has members is not healed, whoever started them meanwhile.
	for _, p := range procs {
		if left := p.groupMembers(); len(left) > 0 {
			pids := make([]string, len(left))
			for i, q := range left {
				pids[i] = strconv.Itoa(q.PID)
			}
			errs = append(errs, fmt.Errorf("kill process group of %s (pid %d): members still alive: %s", p.Name, p.PID, strings.Join(pids, ", ")))
		}
	}
	if !self {
		rep.Proxies, rep.Faults = len(rec.Proxies), len(rec.Faults)
	}
	// A Kubernetes run's leftovers are its namespaces, not engine containers.
	if rec.Runtime != "" && rec.Runtime != "local" && rec.Runtime != "kubernetes" {
		switch {
		case cfg.cleaner != nil:
			removed, err := cfg.cleaner(ctx, rec.RunID)
			rep.Containers = removed
			if err != nil {
				errs = append(errs, err)
			}
		case len(rec.Containers)+len(rec.Networks) > 0:
			errs = append(errs, fmt.Errorf("remove %d container(s) of runtime %s: no cleaner for it in this command", len(rec.Containers), rec.Runtime))
		}
	}
	if len(rec.Namespaces) > 0 {
		if cfg.nsCleaner == nil {
			errs = append(errs, fmt.Errorf("delete %d namespace(s): no Kubernetes cleaner in this command", len(rec.Namespaces)))
		} else {
			deleted, err := cfg.nsCleaner(ctx, rec.RunID, slices.Clone(rec.Namespaces))
			rep.Namespaces = deleted
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	rep.Err = errors.Join(errs...)
	return rep
}

// recordingRuntime records every process of the runtime it wraps before and after each
// action, so that a record always covers what might be running.
type recordingRuntime struct {
	runtime.Runtime
	j     *Journal
	runID string
}

var (
	_ runtime.Runtime = (*recordingRuntime)(nil)
	_ runtime.Process = (*recordedProcess)(nil)
)

// WrapRuntime wraps rt so that every process it starts, restarts, pauses or resumes is
// recorded in j, and carries MarkerEnv in its environment.
func WrapRuntime(rt runtime.Runtime, j *Journal) runtime.Runtime {
	return &recordingRuntime{Runtime: rt, j: j, runID: j.Record().RunID}
}

// Unwrap returns the runtime underneath, so that callers can tell what kind it is.
func (u *recordingRuntime) Unwrap() runtime.Runtime { return u.Runtime }

// Start records the name, starts the process, then records its pid and start time.
func (u *recordingRuntime) Start(ctx context.Context, s runtime.Spec) (runtime.Process, error) {
	if s.Container == nil {
		// A container is found by its run label instead: its pid may belong to another
		// pid namespace (an engine in a VM), where the marker would find a stranger.
		s.Env = append(slices.Clone(s.Env), MarkerEnv+"="+u.runID)
	}
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.Labels["faultline.undo"] = u.runID
	if err := u.j.setProcess(Process{Name: s.Name}); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	p, err := u.Runtime.Start(ctx, s)
	if err != nil {
		return nil, err
	}
	up := &recordedProcess{Process: p, j: u.j}
	if err := up.record(false); err != nil {
		return up, fmt.Errorf("start %s: %w", s.Name, err)
	}
	return up, nil
}

// recordedProcess is a runtime.Process whose pid changes and pauses are recorded.
type recordedProcess struct {
	runtime.Process
	j *Journal
}

func (p *recordedProcess) record(paused bool) error {
	if _, container := runtime.As[runtime.HostPorter](p.Process); container {
		// Removed by the record's container cleaner, by label: its pid is the engine's,
		// which need not be this host's (and a frozen container ignores SIGKILL).
		return nil
	}
	pid := p.PID()
	if pid <= 0 {
		return nil
	}
	id, err := Identify(pid)
	if err != nil {
		return nil // already gone: nothing to undo
	}
	id.Name, id.Paused = p.Name(), paused
	return p.j.Update(func(r *Record) {
		// One entry per name: the latest incarnation replaces a restarted one.
		r.Processes = slices.DeleteFunc(r.Processes, func(q Process) bool { return q.Name == id.Name })
		r.Processes = append(r.Processes, id)
	})
}

// Unwrap returns the process underneath, whose optional capabilities (a container's
// network and ports) this wrapper does not repeat.
func (p *recordedProcess) Unwrap() runtime.Process { return p.Process }

// Pause records the pause before freezing the process.
func (p *recordedProcess) Pause() error {
	if err := p.record(true); err != nil {
		return fmt.Errorf("pause %s: %w", p.Name(), err)
	}
	return p.Process.Pause()
}

// Resume thaws the process, then records it running.
func (p *recordedProcess) Resume() error {
	err := p.Process.Resume()
	_ = p.record(false)
	return err
}

// Restart records the new incarnation once it runs; the old one is stopped first, and a
// harness killed in between leaves the new child marked in its environment.
func (p *recordedProcess) Restart(ctx context.Context) error {
	err := p.Process.Restart(ctx)
	if rerr := p.record(false); err == nil && rerr != nil {
		return fmt.Errorf("restart %s: %w", p.Name(), rerr)
	}
	return err
}

// NewRunID names a run's record: unique per harness process even when two runs share a
// scenario and a second.
func NewRunID(began time.Time, scenario string) string {
	return fmt.Sprintf("%s-%s-%d", began.UTC().Format("20060102T150405Z"), scenario, os.Getpid())
}
