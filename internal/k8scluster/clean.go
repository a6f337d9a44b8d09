package k8scluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// grace is how long processes get to exit on SIGTERM before SIGKILL: an API server whose
// etcd is gone can hang in graceful shutdown for minutes and still answer /readyz.
const grace = 3 * time.Second

// Clean tears down the cluster that lived under dir after its owner died (SIGKILL, a
// crash): every process whose command line names dir and every container process, the
// mounts under dir, the kubepods cgroups, the iptables KUBE-* chains with the jumps into
// them, and the CNI bridge. It is safe to run when nothing is left. It refuses while a
// live cluster holds the machine's lock, as the host-wide parts would be that cluster's.
func Clean(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("clean cluster: %w", err)
	}
	// The state file marks dir as a cluster's: without it, "every process naming dir" could
	// be anyone's (think of Clean("/tmp")).
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return fmt.Errorf("clean cluster: no cluster state in %s: %w", dir, err)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("clean cluster: %s: %w", filepath.Join(dir, stateFile), err)
	}
	lock, err := takeLock(context.Background())
	if err != nil {
		return fmt.Errorf("clean cluster: %w", err)
	}
	defer lock.Close()
	// The recorded daemons, if their pid still runs our binary (not a reused pid); the
	// shims and container processes are found by dir and by cgroup.
	for _, pid := range s.PIDs {
		if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && bytes.Contains(cmdline, []byte(dir+"/")) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return teardown(dir, nil, nil)
}

// teardown kills, unmounts and removes; afterKill runs once no process is left (the owner
// closes its embedded etcd there, after the API server is gone).
func teardown(dir string, procs []*proc, afterKill func()) error {
	var errs []error
	killContainers()
	if err := killDirProcs(dir, procs); err != nil {
		errs = append(errs, err)
	}
	if afterKill != nil {
		afterKill()
	}
	if err := unmountUnder(dir); err != nil {
		errs = append(errs, err)
	}
	if err := removeCgroups(); err != nil {
		errs = append(errs, err)
	}
	if err := cleanHost(); err != nil {
		errs = append(errs, err)
	}
	if left := Leftovers(dir); len(left) > 0 {
		errs = append(errs, fmt.Errorf("tear down cluster: left behind: %s", strings.Join(left, "; ")))
	} else {
		// Only with no mount left: a RemoveAll through a hostPath bind mount would delete
		// the host's files. The logs stay for a post-mortem.
		for _, d := range []string{"containerd", "kubelet", "etcd", "cni", "pod-logs"} {
			if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
				errs = append(errs, fmt.Errorf("tear down cluster: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// Leftovers lists what a cluster under dir left on the machine; empty after a complete
// teardown.
func Leftovers(dir string) []string {
	var out []string
	if pids := dirProcs(dir); len(pids) > 0 {
		out = append(out, fmt.Sprintf("processes %v", pids))
	}
	if pids := cgroupPIDs(); len(pids) > 0 {
		out = append(out, fmt.Sprintf("container processes %v", pids))
	}
	if m := mountsUnder(dir); len(m) > 0 {
		out = append(out, fmt.Sprintf("mounts %v", m))
	}
	if cg := kubepodsCgroups(); len(cg) > 0 {
		out = append(out, fmt.Sprintf("cgroups %v", cg))
	}
	if ch := kubeChains(); len(ch) > 0 {
		out = append(out, fmt.Sprintf("iptables chains %v", ch))
	}
	if _, err := os.Stat("/sys/class/net/" + Bridge); err == nil {
		out = append(out, "bridge "+Bridge)
	}
	if nodeAddressPresent() {
		out = append(out, "address "+NodeIP+" on lo")
	}
	return out
}

// killContainers SIGKILLs every process in the kubepods cgroups until none is left
// (a dying container can still fork for a moment).
func killContainers() {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		pids := cgroupPIDs()
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killDirProcs stops the cluster's daemons and shims: SIGTERM, then SIGKILL after grace.
// Children of this process are reaped by their Wait goroutines; the rest by init.
func killDirProcs(dir string, procs []*proc) error {
	signalAll := func(sig syscall.Signal) {
		for _, p := range procs {
			p.cmd.Process.Signal(sig)
		}
		for _, pid := range dirProcs(dir) {
			syscall.Kill(pid, sig)
		}
	}
	gone := func() bool {
		for _, p := range procs {
			select {
			case <-p.done:
			default:
				return false
			}
		}
		return len(dirProcs(dir)) == 0
	}
	signalAll(syscall.SIGTERM)
	for deadline := time.Now().Add(grace); time.Now().Before(deadline) && !gone(); {
		time.Sleep(100 * time.Millisecond)
	}
	signalAll(syscall.SIGKILL)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if gone() {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("tear down cluster: processes survive SIGKILL: %v", dirProcs(dir))
}

// dirProcs are the live processes whose command line names dir: every daemon of the
// cluster and containerd's shims (their -address is the socket under dir).
func dirProcs(dir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	needle := []byte(dir + "/")
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, needle) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// cgroupRoots are where the kubelet (cgroupfs driver) makes kubepods: one per v1
// controller hierarchy, or the unified v2 root.
func cgroupRoots() []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{"/sys/fs/cgroup/kubepods"}
	}
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	var out []string
	for _, e := range ents {
		p := filepath.Join("/sys/fs/cgroup", e.Name(), "kubepods")
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			out = append(out, p)
		}
	}
	return out
}

func kubepodsCgroups() []string {
	var out []string
	for _, r := range cgroupRoots() {
		if _, err := os.Stat(r); err == nil {
			out = append(out, r)
		}
	}
	return out
}

func cgroupPIDs() []int {
	seen := map[int]bool{}
	for _, r := range cgroupRoots() {
		filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	out := make([]int, 0, len(seen))
	for pid := range seen {
		out = append(out, pid)
	}
	sort.Ints(out)
	return out
}

// removeCgroups removes the kubepods trees bottom-up; a cgroup whose last process is
// still exiting refuses rmdir for a moment, hence the retries.
func removeCgroups() error {
	var last error
	for deadline := time.Now().Add(5 * time.Second); ; {
		last = nil
		for _, r := range cgroupRoots() {
			var dirs []string
			filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			for i := len(dirs) - 1; i >= 0; i-- {
				if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
					last = fmt.Errorf("remove cgroup %s: %w", dirs[i], err)
				}
			}
		}
		if last == nil || time.Now().After(deadline) {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 is a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountUnder detaches every mount below dir, deepest first (rootfs, shm, projected
// volumes, network namespaces), until none is left.
func unmountUnder(dir string) error {
	for range 5 {
		m := mountsUnder(dir)
		if len(m) == 0 {
			return nil
		}
		sort.Slice(m, func(i, j int) bool { return len(m[i]) > len(m[j]) })
		for _, mp := range m {
			syscall.Unmount(mp, syscall.MNT_DETACH)
		}
	}
	if m := mountsUnder(dir); len(m) > 0 {
		return fmt.Errorf("tear down cluster: mounts survive unmount: %v", m)
	}
	return nil
}

// cleanHost removes what the stack changed host-wide: the KUBE-* chains of the kubelet and
// kube-proxy with the jumps into them from the built-in chains, and the CNI bridge. Other
// tenants' chains (DOCKER*, policies) are never touched.
func cleanHost() error {
	var errs []error
	for _, tool := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(tool + "-restore"); err != nil {
			continue
		}
		for _, table := range []string{"filter", "nat", "mangle", "raw"} {
			if err := cleanTable(tool, table); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if _, err := os.Stat("/sys/class/net/" + Bridge); err == nil {
		if out, err := exec.Command("ip", "link", "del", Bridge).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("delete bridge %s: %w: %s", Bridge, err, strings.TrimSpace(string(out))))
		}
	}
	if nodeAddressPresent() {
		if out, err := exec.Command("ip", "addr", "del", NodeIP+"/32", "dev", "lo").CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("delete node address %s: %w: %s", NodeIP, err, strings.TrimSpace(string(out))))
		}
	}
	// libcni's result cache outside our dir, one file per attachment of our network.
	if m, _ := filepath.Glob("/var/lib/cni/results/" + cniNetwork + "-*"); len(m) > 0 {
		for _, f := range m {
			os.Remove(f)
		}
	}
	return errors.Join(errs...)
}

// cleanTable removes one table's KUBE-* chains in one iptables-restore transaction: first
// the jumps into them from other chains, then their rules, then the chains.
func cleanTable(tool, table string) error {
	out, err := exec.Command(tool+"-save", "-t", table).Output()
	if err != nil {
		return nil // table not available on this kernel
	}
	restore, n := restoreScript(table, string(out))
	if n == 0 {
		return nil
	}
	cmd := exec.Command(tool+"-restore", "--noflush")
	cmd.Stdin = strings.NewReader(restore)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("remove %s %s KUBE-* chains: %w: %s", tool, table, err, strings.TrimSpace(string(b)))
	}
	return nil
}

// restoreScript turns one table's iptables-save output into the iptables-restore input that
// deletes its KUBE-* chains; n is how many chains and jumps it removes.
func restoreScript(table, save string) (script string, n int) {
	var chains, jumps []string
	for _, l := range strings.Split(save, "\n") {
		switch {
		case strings.HasPrefix(l, ":KUBE-"):
			chains = append(chains, strings.Fields(l[1:])[0])
		case strings.HasPrefix(l, "-A ") && !strings.HasPrefix(l, "-A KUBE-") && jumpsToKube(l):
			jumps = append(jumps, "-D "+l[3:])
		}
	}
	if len(chains)+len(jumps) == 0 {
		return "", 0
	}
	var b strings.Builder
	b.WriteString("*" + table + "\n")
	for _, j := range jumps {
		b.WriteString(j + "\n")
	}
	for _, c := range chains {
		b.WriteString("-F " + c + "\n")
	}
	for _, c := range chains {
		b.WriteString("-X " + c + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String(), len(chains) + len(jumps)
}

func jumpsToKube(rule string) bool {
	f := strings.Fields(rule)
	for i := 0; i+1 < len(f); i++ {
		if (f[i] == "-j" || f[i] == "-g") && strings.HasPrefix(f[i+1], "KUBE-") {
			return true
		}
	}
	return false
}

// kubeChains lists the KUBE-* chains left in any table, as tool/table/chain.
func kubeChains() []string {
	var out []string
	for _, tool := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle", "raw"} {
			b, err := exec.Command(tool+"-save", "-t", table).Output()
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(b), "\n") {
				switch {
				case strings.HasPrefix(l, ":KUBE-"):
					out = append(out, tool+"/"+table+"/"+strings.Fields(l[1:])[0])
				case strings.HasPrefix(l, "-A ") && jumpsToKube(l):
					out = append(out, tool+"/"+table+"/jump from "+strings.Fields(l)[1])
				}
			}
		}
	}
	return out
}

func nodeAddressPresent() bool {
	out, err := exec.Command("ip", "-4", "addr", "show", "dev", "lo").Output()
	return err == nil && strings.Contains(string(out), " "+NodeIP+"/32 ")
}
