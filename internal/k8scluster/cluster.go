// Package k8scluster runs a real single-node Kubernetes cluster for tests and for people
// (make k8s-cluster): etcd (embedded), kube-apiserver, kube-controller-manager,
// kube-scheduler, containerd v2 with the host's runc, kubelet and kube-proxy (iptables)
// with a CNI bridge — the binaries tools/k8s/build.sh caches outside the clone. No image
// registry is needed: images are imported straight into containerd.
//
// Stop and Clean tear everything down, also what the stack changed on the host (iptables
// KUBE-* chains, the bridge, kubepods cgroups, mounts): the machine is shared. One cluster
// runs per machine at a time (kube-proxy's chains are host-wide); a lock enforces it.
package k8scluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/faultline-dev/faultline/runtime/ports"
	"github.com/faultline-dev/faultline/runtime/wait"
)

// Network layout: a /24 for pods on the bridge and a /24 for Services, clear of Docker's
// 172.17/16.
const (
	PodCIDR     = "10.244.0.0/24"
	ServiceCIDR = "10.96.0.0/24"
	serviceIP   = "10.96.0.1"
	gatewayIP   = "10.244.0.1" // the bridge's address, the pods' gateway
	// Bridge is the CNI bridge's interface name; Clean deletes it.
	Bridge = "flk8s0"
	// NodeIP is the node's address, on lo: the kubelet refuses a loopback node IP (and
	// kube-proxy then waits 30 s for one), and the host's own address would put the
	// kubelet's API on the network. Clean removes it.
	NodeIP = "10.245.0.1"
	// forwardChain lets the pods' bridge through the FORWARD chain (see Start).
	forwardChain = "KUBE-FAULTLINE-BRIDGE"
	// NodeName is the single node's name.
	NodeName   = "faultline-node"
	cniNetwork = "faultline-k8s"
	lockPath   = "/run/faultline-k8s.lock"
	stateFile  = "cluster.json"
)

// Image is one image to import into the cluster's containerd, named as pods will name it
// (with imagePullPolicy: Never).
type Image struct {
	Ref   string
	Image v1.Image
}

// Options configures Start.
type Options struct {
	// BinDir holds the binaries; BinDir() when empty.
	BinDir string
	// Images are imported before Start returns, next to the pause image.
	Images []Image
	// Log receives progress lines (one per stage, with its time since Start began).
	Log io.Writer
	// Registries are HOST:PORT of registries on this machine that containerd pulls from
	// over plain HTTP (a hosts.toml each under its registry config_path), for pods that
	// name images there with imagePullPolicy Always or IfNotPresent.
	Registries []string
}

// Timings are the stages of Start, each counted from Start's beginning.
type Timings struct {
	APIServerReady time.Duration // /readyz answered 200
	ImagesImported time.Duration // pause and Options.Images in containerd
	NodeReady      time.Duration // the node's Ready condition True and the default service account there
}

// Cluster is a running cluster.
type Cluster struct {
	Dir        string // everything the cluster writes lives below it
	Kubeconfig string // path of an admin kubeconfig (token auth, CA pinned)
	Server     string // https://127.0.0.1:PORT
	Token      string // bearer token of a system:masters user
	CA         []byte // PEM of the CA that signed the API server's certificate
	Timings    Timings

	bin   string
	log   io.Writer
	etcd  *embed.Etcd
	procs []*proc
	lock  *os.File
	http  *http.Client
	dns   *clusterDNS
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// state is what Clean needs after the owner died: who to look for and what to remove.
type state struct {
	Dir    string `json:"dir"`
	Bridge string `json:"bridge"`
	PIDs   []int  `json:"pids"`
}

// SkipEnv, set to a reason, makes Supported refuse whatever the machine offers: CI sets it
// for make test while it builds the cluster binaries beside it, and runs the cluster's
// tests once they are built.
const SkipEnv = "FAULTLINE_K8S_SKIP"

// Supported says why this machine cannot run a cluster (nil when it can): SkipEnv set,
// not root, no cgroups, no runc or iptables, or the binaries not built into binDir.
func Supported(binDir string) error {
	if binDir == "" {
		binDir = BinDir()
	}
	if why := os.Getenv(SkipEnv); why != "" {
		return fmt.Errorf("%s is set: %s", SkipEnv, why)
	}
	if os.Geteuid() != 0 {
		return errors.New("not root (kubelet, containerd and kube-proxy need it)")
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
			return errors.New("no cgroups mounted at /sys/fs/cgroup")
		}
	}
	for _, tool := range []string{"runc", "iptables", "iptables-save", "iptables-restore", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not installed (Debian: apt-get install -y runc iptables iproute2)", tool)
		}
	}
	for _, b := range binaries {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return fmt.Errorf("cluster binaries not built in %s (make k8s-build, ~30 min cold)", binDir)
		}
	}
	// The build writes its marker last: binaries without it may be half written (a build
	// still running beside the tests, as CI runs it on a new machine).
	if _, err := os.Stat(filepath.Join(binDir, ".complete")); err != nil {
		return fmt.Errorf("cluster binaries in %s are not complete (make k8s-build still running, or interrupted)", binDir)
	}
	return nil
}

// Start starts a cluster whose files live under dir and waits until its node is Ready.
// On error everything started so far is torn down.
func Start(ctx context.Context, dir string, opts Options) (c *Cluster, err error) {
	began := time.Now()
	if opts.BinDir == "" {
		opts.BinDir = BinDir()
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if err := Supported(opts.BinDir); err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	lock, err := takeLock(ctx)
	if err != nil {
		return nil, err
	}
	// Holding the lock means no other cluster runs: chains or a bridge still there are
	// leftovers of one whose owner was killed, and they would confuse this one; so would a
	// killed owner's daemons still running in this very dir.
	if _, serr := os.Stat(filepath.Join(dir, stateFile)); serr == nil {
		err = teardown(dir, nil, nil)
	} else {
		err = cleanHost()
	}
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("start cluster: clean leftovers: %w", err)
	}
	c = &Cluster{Dir: dir, bin: opts.BinDir, log: opts.Log, lock: lock}
	// The node address, and the bridge made before the CNI plugin would make it, so that the
	// Service range can be routed to it: the host's own connections to a ClusterIP then
	// leave from the bridge's address (without this route they left by the default route
	// and were answered by whatever sits there). Deleting the bridge deletes the route.
	for _, args := range [][]string{
		{"addr", "replace", NodeIP + "/32", "dev", "lo"},
		{"link", "add", Bridge, "type", "bridge"},
		{"addr", "replace", gatewayIP + "/24", "dev", Bridge},
		{"link", "set", Bridge, "up"},
		{"route", "replace", ServiceCIDR, "dev", Bridge, "src", gatewayIP},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			lock.Close()
			cleanHost()
			return nil, fmt.Errorf("start cluster: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	// Pod-to-pod traffic is bridged, and bridged traffic goes through the FORWARD chain
	// (br_netfilter), whose policy a Docker host sets to DROP: the pods' bridge is let
	// through by a chain of ours, named KUBE-* so that Clean removes it with kube-proxy's.
	for _, args := range [][]string{
		{"-N", forwardChain},
		{"-A", forwardChain, "-i", Bridge, "-j", "ACCEPT"},
		{"-A", forwardChain, "-o", Bridge, "-j", "ACCEPT"},
		{"-I", "FORWARD", "1", "-j", forwardChain},
	} {
		if out, err := exec.Command("iptables", append([]string{"-w", "-t", "filter"}, args...)...).CombinedOutput(); err != nil {
			lock.Close()
			cleanHost()
			return nil, fmt.Errorf("start cluster: iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	began = time.Now() // the lock may have waited for another cluster
	defer func() {
		if err != nil {
			if serr := c.Stop(); serr != nil {
				err = errors.Join(err, serr)
			}
			c = nil
		}
	}()
	for _, d := range []string{"logs", "etc", "kubelet", "pod-logs", "cni/net.d", "cni/ipam", "containerd/root", "containerd/state"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return c, fmt.Errorf("start cluster: %w", err)
		}
	}
	if err := c.saveState(); err != nil {
		return c, err
	}
	stage := func(what string) time.Duration {
		d := time.Since(began)
		fmt.Fprintf(c.log, "k8s: %s at %.1fs\n", what, d.Seconds())
		return d
	}

	p, err := ports.Free(6)
	if err != nil {
		return c, fmt.Errorf("start cluster: %w", err)
	}
	etcdClient, etcdPeer, apiPort, kubeletPort, kubeletHealthz, proxyHealthz := p[0], p[1], p[2], p[3], p[4], p[5]
	more, err := ports.Free(3)
	if err != nil {
		return c, fmt.Errorf("start cluster: %w", err)
	}

	// pause image first: it is a go build and needs no cluster.
	pause, err := PauseImage(ctx)
	if err != nil {
		return c, fmt.Errorf("start cluster: %w", err)
	}

	if err := c.startEtcd(etcdClient, etcdPeer); err != nil {
		return c, err
	}
	pk, err := writePKI(filepath.Join(dir, "pki"))
	if err != nil {
		return c, fmt.Errorf("start cluster: %w", err)
	}
	if err := c.writeAuth(pk, apiPort); err != nil {
		return c, err
	}
	etc := filepath.Join(dir, "etc")
	if err := c.spawn("kube-apiserver",
		"--etcd-servers=http://127.0.0.1:"+strconv.Itoa(etcdClient),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(apiPort),
		// No kubernetes Service endpoints: the address 127.0.0.1 means nothing inside a pod.
		"--endpoint-reconciler-type=none",
		"--token-auth-file="+filepath.Join(etc, "tokens.csv"),
		"--tls-cert-file="+pk.ServerCert, "--tls-private-key-file="+pk.ServerKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pk.SAPub, "--service-account-signing-key-file="+pk.SAKey,
		"--service-cluster-ip-range="+ServiceCIDR,
		"--authorization-mode=RBAC", "--allow-privileged=true",
		// Logs, exec and port-forward go from the apiserver to the kubelet: by the node's
		// address, since nothing resolves the node's name.
		"--kubelet-preferred-address-types=InternalIP",
		"--cert-dir="+filepath.Join(dir, "pki"), "--profiling=false",
	); err != nil {
		return c, err
	}
	if err := c.waitFor(ctx, "kube-apiserver /readyz", func(ctx context.Context) (bool, error) {
		code, _, err := c.get(ctx, "/readyz")
		return err == nil && code == 200, nil
	}); err != nil {
		return c, err
	}
	c.Timings.APIServerReady = stage("apiserver ready")
	if err := c.serveDNS(ctx); err != nil {
		return c, err
	}

	kubeconfig := c.Kubeconfig
	if err := c.spawn("kube-controller-manager", "--kubeconfig="+kubeconfig, "--leader-elect=false",
		"--service-account-private-key-file="+pk.SAKey, "--root-ca-file="+pk.CA,
		"--use-service-account-credentials=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(more[0]),
		"--profiling=false"); err != nil {
		return c, err
	}
	if err := c.spawn("kube-scheduler", "--kubeconfig="+kubeconfig, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(more[1]), "--profiling=false"); err != nil {
		return c, err
	}

	sock, err := c.startContainerd(ctx, pause.Ref, opts.Registries)
	if err != nil {
		return c, err
	}
	if err := c.importImages(ctx, sock, append([]Image{pause}, opts.Images...)); err != nil {
		return c, err
	}
	c.Timings.ImagesImported = stage("images imported")

	kcfg := filepath.Join(etc, "kubelet.yaml")
	if err := os.WriteFile(kcfg, []byte(kubeletConfig(dir, sock, kubeletPort, kubeletHealthz)), 0o644); err != nil {
		return c, fmt.Errorf("start cluster: %w", err)
	}
	if err := c.spawn("kubelet", "--config="+kcfg, "--kubeconfig="+kubeconfig,
		"--root-dir="+filepath.Join(dir, "kubelet"), "--hostname-override="+NodeName, "--node-ip="+NodeIP); err != nil {
		return c, err
	}
	if err := c.spawn("kube-proxy", "--kubeconfig="+kubeconfig, "--proxy-mode=iptables",
		"--hostname-override="+NodeName, "--cluster-cidr="+PodCIDR,
		// 0 leaves the host's conntrack sysctls alone: other tenants share them.
		"--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0", "--conntrack-tcp-timeout-close-wait=0",
		"--iptables-localhost-nodeports=false", "--nodeport-addresses=primary",
		"--healthz-bind-address=127.0.0.1:"+strconv.Itoa(proxyHealthz), "--metrics-bind-address=127.0.0.1:"+strconv.Itoa(more[2])); err != nil {
		return c, err
	}
	if err := c.waitFor(ctx, "node "+NodeName+" Ready", c.nodeReady); err != nil {
		return c, err
	}
	if err := c.waitFor(ctx, "default service account", func(ctx context.Context) (bool, error) {
		code, _, err := c.get(ctx, "/api/v1/namespaces/default/serviceaccounts/default")
		return err == nil && code == 200, nil
	}); err != nil {
		return c, err
	}
	c.Timings.NodeReady = stage("node Ready")
	return c, nil
}

// takeLock takes the machine's one-cluster lock, waiting for another cluster to stop
// until ctx is done (a context without deadline does not wait). The kernel releases it
// when the owner dies, however it dies.
func takeLock(ctx context.Context) (*os.File, error) {
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock cluster: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		_, hasDeadline := ctx.Deadline()
		if !hasDeadline || ctx.Err() != nil {
			f.Close()
			return nil, fmt.Errorf("lock cluster: another test cluster runs on this machine (%s held): %w", lockPath, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (c *Cluster) saveState() error {
	s := state{Dir: c.Dir, Bridge: Bridge}
	for _, p := range c.procs {
		s.PIDs = append(s.PIDs, p.cmd.Process.Pid)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("save cluster state: %w", err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, stateFile), b, 0o644); err != nil {
		return fmt.Errorf("save cluster state: %w", err)
	}
	return nil
}

func (c *Cluster) startEtcd(client, peer int) error {
	cfg := embed.NewConfig()
	cfg.Name = "k8s"
	cfg.Dir = filepath.Join(c.Dir, "etcd")
	cu := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(client)}
	pu := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(peer)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.TickMs, cfg.ElectionMs, cfg.InitialElectionTickAdvance = 50, 500, true
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(c.Dir, "logs", "etcd.log")}
	cfg.ListenMetricsUrls = nil
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	c.etcd = e
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("start etcd: not ready after 30s")
	}
}

func (c *Cluster) writeAuth(pk pki, apiPort int) error {
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return fmt.Errorf("write auth: %w", err)
	}
	c.Token = hex.EncodeToString(tok)
	c.Server = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	ca, err := os.ReadFile(pk.CA)
	if err != nil {
		return fmt.Errorf("write auth: %w", err)
	}
	c.CA = ca
	etc := filepath.Join(c.Dir, "etc")
	if err := os.WriteFile(filepath.Join(etc, "tokens.csv"), []byte(c.Token+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		return fmt.Errorf("write auth: %w", err)
	}
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: faultline
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: faultline
  context: {cluster: faultline, user: admin}
current-context: faultline
`, c.Server, pk.CA, c.Token)
	if err := os.WriteFile(c.Kubeconfig, []byte(kc), 0o600); err != nil {
		return fmt.Errorf("write auth: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c.http = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return nil
}

// spawn starts one of the binaries with its output in logs/<name>.log. The processes get
// their own process group so a Ctrl-C at a terminal reaches only the owner, which then
// tears down in order.
func (c *Cluster) spawn(name string, args ...string) error {
	logf, err := os.Create(filepath.Join(c.Dir, "logs", name+".log"))
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "PATH="+c.bin+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return c.saveState()
}

// waitFor polls check until it holds, failing early when one of the processes exited
// (with the tail of its log, which says why).
func (c *Cluster) waitFor(ctx context.Context, what string, check func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	err := wait.Func(func(ctx context.Context) (bool, error) {
		for _, p := range c.procs {
			select {
			case <-p.done:
				return false, wait.Permanent(fmt.Errorf("%s exited (%v): %s", p.name, p.err, c.logTail(p.name)))
			default:
			}
		}
		return check(ctx)
	}).Every(200 * time.Millisecond).Wait(ctx)
	if err != nil {
		return fmt.Errorf("wait for %s: %w", what, err)
	}
	return nil
}

func (c *Cluster) logTail(name string) string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "logs", name+".log"))
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return strings.TrimSpace(string(b))
}

func (c *Cluster) get(ctx context.Context, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Server+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (c *Cluster) nodeReady(ctx context.Context) (bool, error) {
	code, body, err := c.get(ctx, "/api/v1/nodes/"+NodeName)
	if err != nil || code != 200 {
		return false, nil
	}
	var n struct {
		Status struct {
			Conditions []struct{ Type, Status string }
		}
	}
	if err := json.Unmarshal(body, &n); err != nil {
		return false, nil
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == "Ready" {
			return cond.Status == "True", nil
		}
	}
	return false, nil
}

func (c *Cluster) startContainerd(ctx context.Context, pauseRef string, registries []string) (string, error) {
	root := filepath.Join(c.Dir, "containerd")
	sock := filepath.Join(root, "containerd.sock")
	cni := filepath.Join(c.Dir, "cni")
	hosts, err := writeRegistryHosts(filepath.Join(c.Dir, "etc", "certs.d"), registries)
	if err != nil {
		return "", fmt.Errorf("start containerd: %w", err)
	}
	cfg := fmt.Sprintf(`version = 3
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
# imports and pulls unpack for the native snapshotter (the default one may not load here).
[[plugins.'io.containerd.transfer.v1.local'.unpack_config]]
  platform = %q
  snapshotter = 'native'
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'native'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %q
[plugins.'io.containerd.cri.v1.runtime']
  # root here lacks CAP_SYS_RESOURCE: without this every sandbox fails in runc create.
  restrict_oom_score_adj = true
  # network namespaces under our state dir, not /run/netns, so teardown finds them.
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%q]
    conf_dir = %q
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = 'io.containerd.runc.v2'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = 'runc'
      # runc's state under our dir too (default /run/containerd/runc): a killed container
      # never gets its runc delete.
      Root = %q
      SystemdCgroup = false
`, filepath.Join(root, "root"), filepath.Join(root, "state"), sock, sock+".ttrpc", "linux/"+goruntime.GOARCH, pauseRef,
		filepath.Join(c.bin, "cni"), filepath.Join(cni, "net.d"), filepath.Join(root, "runc"))
	if hosts != "" {
		// Both pull paths read the hosts directory: the CRI's own and the transfer
		// service's, which the CRI uses for pulls in containerd 2.
		// (The transfer table goes before its unpack_config array: TOML defines a table once.)
		cfg = strings.Replace(cfg, "# imports and pulls", fmt.Sprintf("[plugins.'io.containerd.transfer.v1.local']\n  config_path = %q\n# imports and pulls", hosts), 1)
		cfg += fmt.Sprintf("[plugins.'io.containerd.cri.v1.images'.registry]\n  config_path = %q\n", hosts)
	}
	conf := filepath.Join(c.Dir, "etc", "containerd.toml")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		return "", fmt.Errorf("start containerd: %w", err)
	}
	conflist := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": %q, "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}}
]}
`, cniNetwork, Bridge, filepath.Join(cni, "ipam"), PodCIDR)
	if err := os.WriteFile(filepath.Join(cni, "net.d", "10-faultline.conflist"), []byte(conflist), 0o644); err != nil {
		return "", fmt.Errorf("start containerd: %w", err)
	}
	if err := c.spawn("containerd", "--config", conf); err != nil {
		return "", err
	}
	err = c.waitFor(ctx, "containerd socket", func(ctx context.Context) (bool, error) {
		if !fileIsSocket(sock) {
			return false, nil
		}
		return exec.CommandContext(ctx, filepath.Join(c.bin, "ctr"), "--address", sock, "version").Run() == nil, nil
	})
	return sock, err
}

// writeRegistryHosts writes containerd's hosts directory for plain-HTTP registries and
// returns it ("" when there are none).
func writeRegistryHosts(dir string, registries []string) (string, error) {
	if len(registries) == 0 {
		return "", nil
	}
	for _, r := range registries {
		if r == "" || strings.ContainsAny(r, "/ ") {
			return "", fmt.Errorf("registry %q: want HOST:PORT", r)
		}
		toml := fmt.Sprintf("server = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+r, "http://"+r)
		if err := os.MkdirAll(filepath.Join(dir, r), 0o755); err != nil {
			return "", fmt.Errorf("write registry hosts: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, r, "hosts.toml"), []byte(toml), 0o644); err != nil {
			return "", fmt.Errorf("write registry hosts: %w", err)
		}
	}
	return dir, nil
}

func fileIsSocket(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}

// importImages writes the images as one tarball and imports it with ctr into the k8s.io
// namespace the kubelet's CRI uses, unpacked for the native snapshotter.
func (c *Cluster) importImages(ctx context.Context, sock string, imgs []Image) error {
	tarPath := filepath.Join(c.Dir, "images.tar")
	if err := writeTarball(tarPath, imgs); err != nil {
		return err
	}
	defer os.Remove(tarPath)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "ctr"), "--address", sock, "-n", "k8s.io",
		"images", "import", "--snapshotter", "native", "--platform", "linux/"+goruntime.GOARCH, tarPath)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("import images: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

func kubeletConfig(dir, sock string, port, healthz int) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
podLogsDir: %s
staticPodPath: %s
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
# the disk is shared and may be fuller than the defaults allow: never evict test pods for it
evictionHard: {memory.available: "50Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
nodeStatusUpdateFrequency: 2s
clusterDNS: [%s]
clusterDomain: %s
`, NodeIP, port, healthz, sock, filepath.Join(dir, "pod-logs"), filepath.Join(dir, "kubelet", "manifests"), NodeIP, ClusterDomain)
}

// serveDNS starts the cluster's Service DNS (see clusterDNS) on NodeIP:53.
func (c *Cluster) serveDNS(ctx context.Context) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return fmt.Errorf("start cluster dns: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("start cluster dns: %w", err)
	}
	c.dns, err = startDNS(ctx, cs, net.JoinHostPort(NodeIP, "53"))
	return err
}

// RSS is the resident memory of each process of the cluster, in bytes (etcd runs inside
// the owner and is not counted).
func (c *Cluster) RSS() map[string]int64 {
	out := map[string]int64{}
	for _, p := range c.procs {
		out[p.name] = rssOf(p.cmd.Process.Pid)
	}
	return out
}

func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// Stop tears the cluster down completely (see Clean) and releases the machine's lock.
// Processes get a short grace period, then SIGKILL.
func (c *Cluster) Stop() error {
	if c == nil {
		return nil
	}
	dnsErr := c.dns.close()
	c.dns = nil
	// kubelet first: it would restart containers as they are killed.
	for _, name := range []string{"kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager"} {
		for _, p := range c.procs {
			if p.name == name {
				p.cmd.Process.Signal(syscall.SIGKILL)
				<-p.done
			}
		}
	}
	err := teardown(c.Dir, c.procs, func() {
		if c.etcd != nil {
			c.etcd.Close()
			c.etcd = nil
		}
	})
	for _, p := range c.procs {
		<-p.done
	}
	if c.lock != nil {
		c.lock.Close()
		c.lock = nil
	}
	return errors.Join(err, dnsErr)
}
