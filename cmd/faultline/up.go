package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/runtime/images"
	"github.com/faultline-dev/faultline/runtime/kubernetes"
	"github.com/faultline-dev/faultline/runtime/kubernetes/lease"
	"github.com/faultline-dev/faultline/runtime/local"
	"github.com/faultline-dev/faultline/system"
	"github.com/faultline-dev/faultline/system/containers"
	"github.com/faultline-dev/faultline/undo"
)

// DefaultDir is where `faultline up` keeps its run directory unless told otherwise.
const DefaultDir = ".faultline/system"

// systemFlags are the flags shared by every command that starts a system.
type systemFlags struct {
	dir                                   string
	merchants, orders, products, gateways int
	design                                string
	leaseTTL                              time.Duration
}

func (f *systemFlags) register(cmd *cobra.Command, defaultDir string) {
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "dir", defaultDir, "run directory: config/, logs/, data/ (kept between starts), secrets/")
	fl.IntVar(&f.merchants, "merchants", system.DefaultReplicas, "merchant replicas")
	fl.IntVar(&f.orders, "orders", system.DefaultReplicas, "order replicas")
	fl.IntVar(&f.products, "products", system.DefaultReplicas, "product replicas")
	fl.IntVar(&f.gateways, "gateways", 0, "gateways (0: as many as the design says, default 1)")
	fl.StringVar(&f.design, "design", "", "design YAML (default: the built-in resilient design)")
	fl.DurationVar(&f.leaseTTL, "lease-ttl", system.DefaultLeaseTTL, "registry lease TTL (heartbeat) of every instance")
}

func (f *systemFlags) spec() (system.Spec, error) {
	s := system.Spec{
		Dir: f.dir, Merchants: f.merchants, Orders: f.orders, Products: f.products,
		Gateways: f.gateways, DesignFile: f.design, LeaseTTL: f.leaseTTL,
	}
	if errs := s.Validate(); len(errs) > 0 {
		var b strings.Builder
		for _, e := range errs {
			b.WriteString("\n  - " + e.Error())
		}
		return s, usagef("invalid system flags:%s", b.String())
	}
	return s, nil
}

// runtimeFlags choose where the components of a system run.
type runtimeFlags struct {
	runtime  string
	image    string
	keepData bool
	kube     kubeFlags
	// starter, when set, replaces start in up (tests: a system whose lease can be lost).
	starter func(context.Context, system.Spec, *slog.Logger) (upSystem, func(), error)
}

// upSystem is what up needs of the system it keeps running: a *system.System.
type upSystem interface {
	Token(subject string, ttl time.Duration) (string, error)
	GatewayURLs() []string
	ReadyDuration() time.Duration
	Components() []system.Component
	Spec() system.Spec
	Stop(ctx context.Context) error
	// LeaseLost is closed when the run's Lease on the cluster is lost (nil: none held).
	LeaseLost() <-chan struct{}
}

var _ upSystem = (*system.System)(nil)

// Runtimes `--runtime` accepts.
const (
	runtimeLocal      = "local"
	runtimeDocker     = "docker"
	runtimeKubernetes = "kubernetes"
)

// kubeFlags say how to reach a cluster.
type kubeFlags struct {
	kubeconfig, context, toxiproxyImage string
	registry                            string
	leaseTTL                            time.Duration
	runID                               string // the run's undo id (up), not a flag
}

// kubeJournal opens the undo record of an up on kubernetes with the namespace it is about
// to create, so that a killed up's namespace is deleted by the next faultline command.
func kubeJournal(dir string, k kubeFlags) (*undo.Journal, error) {
	kubeconfig := k.kubeconfig
	if kubeconfig != "" {
		abs, err := filepath.Abs(kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("open undo record: %w", err)
		}
		kubeconfig = abs
	}
	runID := undo.NewRunID(time.Now(), "up")
	j, err := undo.OpenJournal(undo.DefaultDir(), runID, dir, runtimeKubernetes)
	if err != nil {
		return nil, err
	}
	j.SetNamespaceCleaner(harness.CleanKubernetes)
	err = j.RecordNamespace(undo.Namespace{Name: kubernetes.NamespaceFor(runID), Kubeconfig: kubeconfig, Context: k.context})
	return j, err
}

func (k *kubeFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&k.kubeconfig, "kubeconfig", "", "kubernetes: kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	fl.StringVar(&k.context, "kube-context", "", "kubernetes: the kubeconfig's context to use (default: its current one)")
	fl.StringVar(&k.toxiproxyImage, "toxiproxy-image", "", "kubernetes: image holding the Toxiproxy server (default: this tree's image imported into the nodes)")
	fl.StringVar(&k.registry, "registry", "", "kubernetes: HOST[:PORT][/PATH] that faultline images push --registry pushed this tree's images to; names both images (instead of --image and --toxiproxy-image)")
	// Not --lease-ttl: that is the registry lease of every instance (up).
	fl.DurationVar(&k.leaseTTL, "kube-lease-ttl", lease.DefaultTTL, "kubernetes: how long the run's Lease lives without renewal before its reaper deletes the run's namespace (whole seconds, at least 3s)")
}

// validate checks the flags that need no cluster (a zero lease TTL is the default).
func (k kubeFlags) validate() error {
	if k.leaseTTL == 0 {
		return nil
	}
	if err := lease.CheckTTL(k.leaseTTL); err != nil {
		return usagef("--kube-lease-ttl: %v", err)
	}
	return nil
}

// checkRegistry refuses a --registry that cannot name the images of a run on runtime rt
// whose --image is image: one on another runtime, one beside an image named by hand (which
// would win over it silently), or one images push would refuse.
func (k kubeFlags) checkRegistry(rt, image string) error {
	switch {
	case k.registry == "":
		return nil
	case rt != runtimeKubernetes:
		return usagef("--registry needs --runtime kubernetes (it names the images the cluster pulls)")
	case image != "" || k.toxiproxyImage != "":
		return usagef("--registry names both images: give it or --image and --toxiproxy-image, not both")
	}
	if err := images.CheckRegistry(k.registry); err != nil {
		return usagef("--registry: %v", err)
	}
	return nil
}

// harness is the harness's view of the flags, with the faultline image image.
func (k kubeFlags) harness(image string) harness.Kubernetes {
	return harness.Kubernetes{Kubeconfig: k.kubeconfig, Context: k.context, Image: image, Toxiproxy: k.toxiproxyImage,
		Registry: k.registry, LeaseTTL: k.leaseTTL}
}

func (f *runtimeFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.runtime, "runtime", runtimeLocal, "where components run: local (OS processes), docker (containers on a private network) or kubernetes (a namespace of a cluster)")
	fl.StringVar(&f.image, "image", "", "docker, kubernetes: image holding the faultline binary (docker default: built from the source tree, reused while the binary is unchanged)")
	fl.BoolVar(&f.keepData, "keep-data", false, "docker: keep the data in DIR/data after stop (bind mounts) instead of run volumes removed on stop")
	f.kube.register(cmd)
}

func (f *runtimeFlags) validate() error {
	if err := f.kube.checkRegistry(f.runtime, f.image); err != nil {
		return err
	}
	switch f.runtime {
	case runtimeDocker:
		return nil
	case runtimeKubernetes:
		if f.keepData {
			return usagef("--keep-data needs --runtime docker (on kubernetes the data lives on the cluster's node, in the run's volumes)")
		}
		return f.kube.validate()
	case runtimeLocal:
		if f.image != "" || f.keepData {
			return usagef("--image and --keep-data need --runtime docker (the local runtime always keeps DIR/data)")
		}
		return nil
	default:
		return usagef("--runtime %q: want %s, %s or %s", f.runtime, runtimeLocal, runtimeDocker, runtimeKubernetes)
	}
}

// start starts spec on the chosen runtime. The returned release must run after the
// system's Stop: it closes a local runtime (a docker system's Stop removes its own).
func (f *runtimeFlags) start(ctx context.Context, spec system.Spec, log *slog.Logger, opts ...system.Option) (*system.System, func(), error) {
	opts = append([]system.Option{system.WithLogger(log)}, opts...)
	if f.runtime == runtimeKubernetes {
		sys, err := containers.StartKubernetes(ctx, spec, containers.Kubernetes{
			Kubeconfig: f.kube.kubeconfig, Context: f.kube.context, Image: f.image, Registry: f.kube.registry,
			RunID: f.kube.runID, LeaseTTL: f.kube.leaseTTL,
		}, opts...)
		return sys, func() {}, err
	}
	if f.runtime == runtimeDocker {
		if f.keepData {
			opts = append(opts, system.WithKeepData())
		}
		sys, err := containers.StartDocker(ctx, spec, containers.Docker{Image: f.image}, opts...)
		return sys, func() {}, err
	}
	rt := local.New(local.WithLogger(log))
	release := func() {
		cctx, cancel := context.WithTimeout(context.Background(), system.DefaultStopTimeout)
		defer cancel()
		_ = rt.Close(cctx)
	}
	sys, err := system.Start(ctx, rt, spec, opts...)
	return sys, release, err
}

func newUpCmd() *cobra.Command {
	var (
		f  systemFlags
		rf runtimeFlags
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the reference system (local processes or containers) and keep it running until Ctrl-C",
		Example: "  faultline up\n" +
			"  faultline up --gateways 2 --orders 3 --design designs/no-breaker.yaml\n" +
			"  faultline up --runtime docker",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := f.spec()
			if err != nil {
				return err
			}
			if err := rf.validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return up(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), spec, rf)
		},
	}
	f.register(cmd, DefaultDir)
	rf.register(cmd)
	return cmd
}

func up(ctx context.Context, out, errOut io.Writer, spec system.Spec, rf runtimeFlags) error {
	log := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Two systems in one directory rewrite each other's configs and the second waits
	// forever on the first one's etcd lock: the directory is claimed first, and a
	// directory in use is refused at once, naming the process that holds it.
	unclaim, err := harness.ClaimDir(spec.Dir)
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	defer unclaim()
	fmt.Fprintf(out, "starting the reference system (%s runtime) in %s ...\n", rf.runtime, spec.Dir)
	if rf.runtime == runtimeKubernetes {
		// The namespace outlives a killed up: recorded first, the next command deletes it.
		j, err := kubeJournal(spec.Dir, rf.kube)
		if err != nil {
			return fmt.Errorf("up: %w", err)
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
			defer cancel()
			if jerr := j.Close(cctx); jerr != nil {
				fmt.Fprintln(errOut, "faultline:", jerr)
			}
		}()
		rf.kube.runID = j.Record().RunID
	}
	start := func(ctx context.Context, spec system.Spec, log *slog.Logger) (upSystem, func(), error) {
		return rf.start(ctx, spec, log)
	}
	if rf.starter != nil {
		start = rf.starter
	}
	sys, release, err := start(ctx, spec, log)
	defer release()
	if err != nil {
		return err
	}
	token, err := sys.Token("demo", 24*time.Hour)
	if err != nil {
		_ = stopSystem(sys)
		return err
	}
	// A system on a cluster whose Lease is lost is stopped at once, not at Ctrl-C: its
	// reaper may be deleting the namespace under it, and serving on would hide that.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopWatch := harness.WatchLease(ctx, cancel, log, sys)
	defer stopWatch()
	printUp(out, sys, token)
	watchExits(ctx, errOut, sys)

	<-ctx.Done()
	if lerr := leaseLost(ctx, "up"); lerr != nil {
		fmt.Fprintln(errOut, "\nthe run's Lease on the cluster is lost: stopping every component ...")
		return errors.Join(lerr, stopSystem(sys))
	}
	fmt.Fprintln(out, "\nstopping every component ...")
	if err := stopSystem(sys); err != nil {
		return err
	}
	if rf.runtime == runtimeKubernetes {
		fmt.Fprintln(out, "stopped; the namespace and everything in it deleted")
		return nil
	}
	if rf.runtime == runtimeDocker && !rf.keepData {
		fmt.Fprintln(out, "stopped; containers, network and data volumes removed")
		return nil
	}
	fmt.Fprintln(out, "stopped; data kept in", sys.Spec().Dir+"/data")
	return nil
}

// leaseLost is the error of command cmd, which kept a system up until ctx ended, when ctx
// ended because the run's Lease on the cluster was lost (harness.WatchLease); nil when it
// ended otherwise (Ctrl-C). It is a harness error: exit code 3.
func leaseLost(ctx context.Context, cmd string) error {
	if !errors.Is(context.Cause(ctx), kubernetes.ErrLeaseLost) {
		return nil
	}
	return fmt.Errorf("%s: %w: the Lease could not be renewed for a whole TTL (cluster unreachable or overloaded), "+
		"so the namespace's reaper may be deleting the system; it was stopped", cmd, kubernetes.ErrLeaseLost)
}

// stopTimeout bounds a stop: every tier's grace period, plus, for containers, removing
// them, the network and the volumes, which takes the engine seconds on a loaded machine.
const stopTimeout = 2 * time.Minute

func stopSystem(sys upSystem) error {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	return sys.Stop(ctx)
}

// watchExits reports a component that dies while the system is up, so a user sees a crash
// in the terminal instead of only in a log file.
func watchExits(ctx context.Context, errOut io.Writer, sys upSystem) {
	for _, c := range sys.Components() {
		done := c.Process.Wait()
		go func() {
			select {
			case <-ctx.Done():
			case <-done:
				if ctx.Err() == nil {
					fmt.Fprintf(errOut, "component %s exited: %v (log: %s)\n", c.Name, c.Process.ExitErr(), c.LogPath)
				}
			}
		}()
	}
}

func printUp(out io.Writer, sys upSystem, token string) {
	urls := sys.GatewayURLs()
	fmt.Fprintf(out, "\nreference system ready in %s (%d processes)\n\n", sys.ReadyDuration().Round(time.Millisecond), len(sys.Components()))
	for i, u := range urls {
		fmt.Fprintf(out, "gateway %d:  %s\n", i+1, u)
	}
	fmt.Fprintf(out, "\nbearer token (subject \"demo\", valid 24h):\n  export TOKEN=%s\n\n", token)
	fmt.Fprintf(out, "try:\n")
	fmt.Fprintf(out, "  curl -s -H \"Authorization: Bearer $TOKEN\" %s/products\n", urls[0])
	fmt.Fprintf(out, "  curl -s -X POST -H \"Authorization: Bearer $TOKEN\" -H 'Idempotency-Key: demo-1' \\\n"+
		"       -H 'Content-Type: application/json' -d '{\"merchant_id\":\"m-01\",\"product_id\":\"p-001\",\"quantity\":1}' %s/orders\n\n", urls[0])
	dir := sys.Spec().Dir
	fmt.Fprintf(out, "logs:    %s/logs/<component>.log\n", dir)
	if sys.Components()[0].DataDir != "" {
		fmt.Fprintf(out, "data:    %s/data/<service>/ (kept for the next start)\n", dir)
	} else {
		fmt.Fprintf(out, "data:    one docker volume per service (removed on stop; --keep-data keeps it in %s/data)\n", dir)
	}
	fmt.Fprintf(out, "configs: %s/config/\n\n", dir)
	fmt.Fprintln(out, "components:")
	for _, c := range sys.Components() {
		fmt.Fprintf(out, "  %-11s pid %-7d listen %-16s admin http://%s\n", c.Name, c.Process.PID(), c.Listen, c.Admin)
	}
	fmt.Fprintln(out, "\npress Ctrl-C to stop")
}
