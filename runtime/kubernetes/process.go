package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/faultline-dev/faultline/runtime"
)

// SignalCommand is the faultline subcommand a process fault execs in the pod: it signals
// the processes of the pod's shared process namespace started from one executable.
const SignalCommand = "signal"

// SignalerPath is where the faultline binary sits in faultline's image; a fault execs it.
const SignalerPath = "/faultline"

// reapTimeout bounds the wait for the kubelet to report a killed container.
const reapTimeout = 20 * time.Second

// Deleter is the capability a Process offers (runtime.Replacer): a Deployment replaces a
// deleted pod, and Delete returns once the replacement is ready.
type Deleter = runtime.Replacer

var (
	_ runtime.Process    = (*Process)(nil)
	_ runtime.Specced    = (*Process)(nil)
	_ runtime.HostPorter = (*Process)(nil)
	_ runtime.Inspector  = (*Process)(nil)
	_ Deleter            = (*Process)(nil)
)

// Process is one instance: a Deployment of one pod. The kubelet restarts its container in
// place when the component dies (crash), so its data (volume) and name survive.
type Process struct {
	rt   *Runtime
	spec runtime.Spec

	// ctl serialises Stop, Restart and Delete.
	ctl sync.Mutex

	mu sync.Mutex
	// cur is the container id of the run Wait follows ("" when none runs); done is closed
	// when that run ends.
	cur     string
	done    chan struct{}
	ended   bool // done is closed
	exitErr error
	// killed is the container id a Kill ended: the instance counts as not running until
	// another container of it is ready, since the kubelet restarts it on its own.
	killed string
	paused bool
	// held is the UID of the pod whose hold file a Kill created (see HoldEnv): its
	// component stays down until Restart releases it.
	held types.UID
	// sess is the signal session of the ready container (see signalSession).
	sess  *signalSession
	hosts map[int]string // container port -> host address of its forwarder
	quit  chan struct{}
	logs  sync.WaitGroup
}

func newProcess(r *Runtime, s runtime.Spec) *Process {
	// done is open from the start: the first run is being started, not over.
	return &Process{rt: r, spec: s, done: make(chan struct{}), hosts: map[int]string{}, quit: make(chan struct{})}
}

// Name is the Spec's name, which is also its Service's name.
func (p *Process) Name() string { return p.spec.Name }

// PID is 0: the component's pid belongs to a node of the cluster.
func (p *Process) PID() int { return 0 }

// Spec returns a copy of the spec the instance was started from.
func (p *Process) Spec() runtime.Spec { return p.spec.ContainerClone() }

// create makes the instance's objects, its port forwarders and its watcher, and waits
// for its pod to be ready.
func (p *Process) create(ctx context.Context) error {
	r := p.rt
	m := r.build(p.spec)
	if m.ConfigMap != nil {
		if _, err := r.cs.CoreV1().ConfigMaps(r.ns).Create(ctx, m.ConfigMap, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create config map: %w", err)
		}
	}
	if m.Secret != nil {
		if _, err := r.cs.CoreV1().Secrets(r.ns).Create(ctx, m.Secret, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create secret: %w", err)
		}
	}
	for _, svc := range m.Services {
		if _, err := r.cs.CoreV1().Services(r.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create service %s: %w", svc.Name, err)
		}
	}
	for _, port := range p.spec.Container.Ports {
		addr, err := r.fw.listen(p, port, p.spec.Container.HostPorts[port])
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.hosts[port] = addr
		p.mu.Unlock()
	}
	if _, err := r.cs.AppsV1().Deployments(r.ns).Create(ctx, m.Deployment, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create deployment: %w", err)
	}
	go p.watch()
	ctx, cancel := context.WithTimeout(ctx, r.startTimeout)
	defer cancel()
	return p.waitReady(ctx, "", true)
}

// podState is what the cluster says of an instance now.
type podState struct {
	pod         *corev1.Pod // the newest pod not being deleted (nil when none)
	containerID string      // of the container that runs now ("" when none)
	running     bool
	ready       bool
	restarts    int32
	waiting     string // why the container is not running (CrashLoopBackOff, ErrImagePull…)
	message     string
	lastExit    error // how the container's previous run ended
}

// observe reads the instance's state from the informer's cache.
func (p *Process) observe() podState {
	var st podState
	pods := p.rt.podsOf(p.spec.Name)
	for _, pod := range pods {
		if pod.DeletionTimestamp == nil {
			st.pod = pod
			break
		}
	}
	if st.pod == nil {
		return st
	}
	for _, cs := range st.pod.Status.ContainerStatuses {
		if cs.Name != ContainerName {
			continue
		}
		st.restarts = cs.RestartCount
		if cs.State.Running != nil {
			st.running, st.containerID = true, cs.ContainerID
		}
		if w := cs.State.Waiting; w != nil {
			st.waiting, st.message = w.Reason, w.Message
		}
		if t := cs.State.Terminated; t != nil {
			st.lastExit = exitError(t)
		} else if t := cs.LastTerminationState.Terminated; t != nil {
			st.lastExit = exitError(t)
		}
		st.ready = cs.Ready
	}
	if p.spec.Container.Ready == nil {
		st.ready = st.running
	}
	return st
}

func exitError(t *corev1.ContainerStateTerminated) error {
	switch {
	case t.ExitCode == 0:
		return nil
	case t.ExitCode == 137 || t.Signal == 9:
		return errors.New("exit code 137 (killed)")
	default:
		return fmt.Errorf("exit code %d (%s)", t.ExitCode, t.Reason)
	}
}

// watch follows the instance's container runs: it ends Wait's run when the container
// stops or is replaced, and copies each run's output to Spec.LogFile.
func (p *Process) watch() {
	for {
		ch := p.rt.changes()
		st := p.observe()
		p.mu.Lock()
		if p.cur != "" && st.containerID != p.cur {
			p.exitErr = st.lastExit
			close(p.done)
			p.cur, p.ended = "", true
		}
		if p.cur == "" && st.running {
			if p.ended {
				p.done, p.ended = make(chan struct{}), false
			}
			p.cur, p.exitErr = st.containerID, nil
			if p.spec.LogFile != "" {
				pod := st.pod.Name
				p.logs.Go(func() { p.follow(pod) })
			}
		}
		// Once ready, not before: its exec would compete with the start-up. Only in the
		// run's own image: another (Toxiproxy's) has no signaler to start.
		if st.ready && st.running && p.spec.Container.Image == p.rt.image && (p.sess == nil || p.sess.container != st.containerID) {
			p.warm(st)
		}
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.quit:
			return
		}
	}
}

// follow appends the output of the pod's running container to Spec.LogFile until it ends.
func (p *Process) follow(pod string) {
	log := p.rt.log.With("name", p.spec.Name)
	if err := os.MkdirAll(filepath.Dir(p.spec.LogFile), 0o755); err != nil {
		log.Warn("create log directory", "err", err)
		return
	}
	f, err := os.OpenFile(p.spec.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		log.Warn("open log file", "err", err)
		return
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	rc, err := p.rt.cs.CoreV1().Pods(p.rt.ns).GetLogs(pod, &corev1.PodLogOptions{Container: ContainerName, Follow: true}).Stream(ctx)
	if err != nil {
		log.Debug("follow container logs", "err", err)
		return
	}
	defer rc.Close()
	_, _ = io.Copy(f, rc)
}

// close stops the watcher, the signal session and the log followers.
func (p *Process) close() {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	p.mu.Lock()
	if p.sess != nil {
		p.sess.close()
	}
	p.mu.Unlock()
	p.logs.Wait()
}

// waitReady returns once a container other than not is ready, or fails when the pod
// cannot start (its image is missing; with strict, also a crash loop).
func (p *Process) waitReady(ctx context.Context, not string, strict bool) error {
	for {
		ch := p.rt.changes()
		st := p.observe()
		next := time.Second
		if st.ready && st.containerID != not {
			if p.follows(st.containerID) {
				p.mu.Lock()
				if p.killed != "" && st.containerID != p.killed {
					p.killed = ""
				}
				p.mu.Unlock()
				return nil
			}
			next = followPoll
		}
		switch st.waiting {
		case "ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError":
			return fmt.Errorf("start pod of %s: %s: %s", p.spec.Name, st.waiting, st.message)
		case "CrashLoopBackOff":
			if strict {
				return fmt.Errorf("start pod of %s: it keeps exiting (%v); see %s", p.spec.Name, st.lastExit, p.spec.LogFile)
			}
		}
		select {
		case <-ch:
		case <-time.After(next):
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to be ready: %w (pod %s)", p.spec.Name, ctx.Err(), describe(st))
		}
	}
}

// followPoll paces the wait for the watcher to take up a container that is already ready.
const followPoll = 10 * time.Millisecond

// follows reports whether the watcher has taken up container id as the current run, so
// that Wait and ExitErr speak of it: a caller that waits for readiness next must not find
// the previous run's closed Wait channel and take the instance for exited.
func (p *Process) follows(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur == id && !p.ended
}

func describe(st podState) string {
	if st.pod == nil {
		return "not scheduled yet"
	}
	s := fmt.Sprintf("%s phase %s, running=%t ready=%t restarts=%d", st.pod.Name, st.pod.Status.Phase, st.running, st.ready, st.restarts)
	if st.waiting != "" {
		s += ", waiting: " + st.waiting
	}
	return s
}

// Wait is closed when the current container run exits.
func (p *Process) Wait() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// ExitErr is why the last container run ended.
func (p *Process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// Running reports whether a container of the instance runs; after Kill, only once the
// kubelet's new container is ready again (until then the crash lasts, to a client).
func (p *Process) Running() bool {
	st := p.observe()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.heldIn(st) {
		return false
	}
	if p.killed != "" {
		if st.containerID == p.killed || !st.ready {
			return false
		}
		p.killed = ""
	}
	return st.running
}

// Kill SIGKILLs the component inside its running container and returns once the kubelet
// reports the container ended. The kubelet starts the container again in place at once,
// but the component in it waits (see HoldEnv) until Restart: a crash lasts until it is
// healed, as on the other runtimes, and not the second or so the kubelet takes, which
// is shorter than the leases and timeouts a scenario means to outlast.
func (p *Process) Kill() error {
	st := p.observe()
	if !st.running {
		return fmt.Errorf("kill %s: %w", p.spec.Name, runtime.ErrNotRunning)
	}
	p.mu.Lock()
	p.killed, p.paused = st.containerID, false
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := p.signal(ctx, st, "HOLD"); err != nil {
		return fmt.Errorf("kill %s: %w", p.spec.Name, err)
	}
	p.mu.Lock()
	p.held = st.pod.UID
	p.mu.Unlock()
	// The exec's own stream may end with the container it ran in: the error is only
	// trusted if the container did not end.
	// Its clients lose it now (see forwarders.sever), not when the exec returns.
	p.rt.fw.sever(st.containerID)
	defer p.rt.fw.forget(st.containerID)
	execErr := p.signal(ctx, st, "KILL")
	ctx, cancel2 := context.WithTimeout(context.Background(), reapTimeout)
	defer cancel2()
	for {
		ch := p.rt.changes()
		now := p.observe()
		if now.containerID != st.containerID || now.pod == nil || now.pod.UID != st.pod.UID {
			return nil
		}
		select {
		case <-ch:
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			if execErr != nil {
				return fmt.Errorf("kill %s: %w", p.spec.Name, execErr)
			}
			return fmt.Errorf("kill %s: the kubelet still reports it running %s after SIGKILL", p.spec.Name, reapTimeout)
		}
	}
}

// Pause stops the component (SIGSTOP) inside its container: sockets stay open, nothing
// answers, and the pod's readiness probe fails.
func (p *Process) Pause() error { return p.freeze(true) }

// Resume continues a paused component (SIGCONT).
func (p *Process) Resume() error { return p.freeze(false) }

func (p *Process) freeze(pause bool) error {
	verb, sig := "pause", "STOP"
	if !pause {
		verb, sig = "resume", "CONT"
	}
	st := p.observe()
	if !st.running {
		return fmt.Errorf("%s %s: %w", verb, p.spec.Name, runtime.ErrNotRunning)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := p.signal(ctx, st, sig); err != nil {
		return fmt.Errorf("%s %s: %w", verb, p.spec.Name, err)
	}
	p.mu.Lock()
	p.paused = pause
	p.mu.Unlock()
	return nil
}

// signal has the faultline binary in st's container carry out a request of Act (a signal
// to the component, HOLD, RELEASE): on the container's signal session, else by a new exec.
func (p *Process) signal(ctx context.Context, st podState, sig string) error {
	if s := p.session(st); s != nil {
		err := s.send(ctx, sig)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errSessionEnded) && (sig == "KILL" || sig == "TERM"):
			// A signal that ends the component ends its container, and the session with
			// it, often before the answer is written: the caller waits for the container
			// to end and fails if it does not.
			return nil
		case !errors.Is(err, errSessionNotReady):
			return fmt.Errorf("signal %s in pod %s: %w", sig, st.pod.Name, err)
		}
	}
	// No session (yet): a new exec.
	out, err := p.rt.exec(ctx, st.pod.Name, []string{SignalerPath, SignalCommand, "--exe", p.spec.Command, sig})
	if err != nil {
		return fmt.Errorf("signal %s in pod %s: %w: %s", sig, st.pod.Name, err, strings.TrimSpace(out))
	}
	return nil
}

// heldIn reports whether st's pod holds the component after a Kill; p.mu is held.
func (p *Process) heldIn(st podState) bool {
	return p.held != "" && st.pod != nil && st.pod.UID == p.held
}

// release lets a held component run (see Kill): once the kubelet's new container runs,
// it removes the hold file from inside it.
func (p *Process) release(ctx context.Context) error {
	for {
		ch := p.rt.changes()
		st := p.observe()
		p.mu.Lock()
		held, killed := p.heldIn(st), p.killed
		p.mu.Unlock()
		if !held {
			return nil
		}
		if st.running && st.containerID != killed {
			if err := p.signal(ctx, st, "RELEASE"); err != nil {
				return fmt.Errorf("release %s: %w", p.spec.Name, err)
			}
			p.mu.Lock()
			p.held = ""
			p.mu.Unlock()
			return nil
		}
		select {
		case <-ch:
		case <-time.After(time.Second):
		case <-ctx.Done():
			return fmt.Errorf("release %s: wait for the kubelet's new container: %w (pod %s)", p.spec.Name, ctx.Err(), describe(st))
		}
	}
}

// session returns the signal session of container, when one was started and has not
// ended; an ended one is started again for the next signal.
func (p *Process) session(st podState) *signalSession {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sess == nil || p.sess.container != st.containerID {
		return nil
	}
	select {
	case <-p.sess.done:
		p.warm(st)
		return nil
	default:
		return p.sess
	}
}

// warm starts a signal session in st's container, in place of the one before; p.mu is
// held.
func (p *Process) warm(st podState) {
	if p.sess != nil {
		p.sess.close()
	}
	p.sess = p.rt.startSession(st.pod.Name, st.containerID, p.spec.Command)
}

// exec runs cmd in pod's container through the API server and returns its output.
func (r *Runtime) exec(ctx context.Context, pod string, cmd []string) (string, error) {
	// The executor copies stdout and stderr on two goroutines: one buffer takes both, so it
	// is locked.
	var out lockedBuffer
	err := r.stream(ctx, pod, cmd, nil, &out)
	return out.String(), err
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Stop scales the instance's Deployment to zero and waits until its pod is gone (SIGTERM,
// the grace period, SIGKILL). Stopping a stopped instance is not an error.
func (p *Process) Stop(ctx context.Context) error {
	p.ctl.Lock()
	defer p.ctl.Unlock()
	if p.isPaused() {
		_ = p.Resume()
	}
	if err := p.scale(ctx, 0); err != nil {
		return fmt.Errorf("stop %s: %w", p.spec.Name, err)
	}
	for {
		ch := p.rt.changes()
		if len(p.rt.podsOf(p.spec.Name)) == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-time.After(time.Second):
		case <-ctx.Done():
			return fmt.Errorf("stop %s: %w", p.spec.Name, ctx.Err())
		}
	}
}

func (p *Process) scale(ctx context.Context, n int) error {
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)
	_, err := p.rt.cs.AppsV1().Deployments(p.rt.ns).Patch(ctx, p.spec.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("scale deployment to %d: %w", n, err)
	}
	return nil
}

func (p *Process) isPaused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// Restart ends the component gracefully (SIGTERM) and returns once the kubelet's new
// container is ready, in the same pod with the same data. A stopped instance is scaled
// up again; a crashed one is waited for (the kubelet restarts it on its own).
func (p *Process) Restart(ctx context.Context) error {
	p.ctl.Lock()
	defer p.ctl.Unlock()
	p.rt.mu.Lock()
	closed := p.rt.closed
	p.rt.mu.Unlock()
	if closed {
		return fmt.Errorf("restart %s: %w", p.spec.Name, runtime.ErrClosed)
	}
	ctx, cancel := context.WithTimeout(ctx, p.rt.startTimeout)
	defer cancel()
	st := p.observe()
	p.mu.Lock()
	held, killed := p.heldIn(st), p.killed
	p.mu.Unlock()
	not := ""
	switch {
	case held:
		if err := p.release(ctx); err != nil {
			return fmt.Errorf("restart %s: %w", p.spec.Name, err)
		}
		not = killed
	case st.pod == nil:
		if err := p.scale(ctx, 1); err != nil {
			return fmt.Errorf("restart %s: %w", p.spec.Name, err)
		}
	case st.running:
		if p.isPaused() {
			if err := p.signal(ctx, st, "CONT"); err != nil {
				return fmt.Errorf("restart %s: %w", p.spec.Name, err)
			}
		}
		p.mu.Lock()
		p.paused = false
		p.mu.Unlock()
		if err := p.signal(ctx, st, "TERM"); err != nil {
			return fmt.Errorf("restart %s: %w", p.spec.Name, err)
		}
		not = st.containerID
	}
	if err := p.waitReady(ctx, not, false); err != nil {
		return fmt.Errorf("restart %s: %w", p.spec.Name, err)
	}
	return nil
}

// Delete deletes the instance's pod (SIGTERM, the grace period) and returns once the pod
// its Deployment made in its place is ready: the failover a Kubernetes user sees when a
// node drains or a pod is evicted. Data in the run's volumes survives.
func (p *Process) Delete(ctx context.Context) error {
	p.ctl.Lock()
	defer p.ctl.Unlock()
	st := p.observe()
	if st.pod == nil {
		return fmt.Errorf("delete %s: %w", p.spec.Name, runtime.ErrNotRunning)
	}
	p.mu.Lock()
	p.paused = false
	p.mu.Unlock()
	err := p.rt.cs.CoreV1().Pods(p.rt.ns).Delete(ctx, st.pod.Name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete pod %s: %w", st.pod.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.rt.startTimeout)
	defer cancel()
	for {
		ch := p.rt.changes()
		now := p.observe()
		next := time.Second
		if now.pod != nil && now.pod.UID != st.pod.UID && now.ready {
			if p.follows(now.containerID) {
				return nil
			}
			next = followPoll
		}
		select {
		case <-ch:
		case <-time.After(next):
		case <-ctx.Done():
			return fmt.Errorf("delete %s: wait for the replacement pod: %w (%s)", p.spec.Name, ctx.Err(), describe(now))
		}
	}
}

// InstanceID is the UID of the instance's current pod (the newest not being deleted), ""
// when it has none: a pod's replacement has a new one, a container restarted in place by
// the kubelet keeps it.
func (p *Process) InstanceID() string {
	st := p.observe()
	if st.pod == nil {
		return ""
	}
	return string(st.pod.UID)
}

// HostPort returns the "127.0.0.1:port" address whose connections the runtime forwards,
// through the API server, to containerPort of the instance's current pod. It stays the
// same across restarts and pod replacements (and is Spec.Container.HostPorts' port when
// pinned there).
func (p *Process) HostPort(containerPort int) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.hosts[containerPort]; ok {
		return a, nil
	}
	return "", fmt.Errorf("map port %s:%d: not one of the spec's ports", p.spec.Name, containerPort)
}

// State says what the cluster says: running is the container's state; paused is what
// this runtime did to it (the cluster cannot see a stopped process); attached is always
// true, since the runtime has no control of the pods' network.
func (p *Process) State(context.Context) (runtime.State, error) {
	st := p.observe()
	if st.pod == nil {
		return runtime.State{}, fmt.Errorf("inspect %s: %w", p.spec.Name, runtime.ErrNotRunning)
	}
	return runtime.State{Running: st.running, Paused: st.running && p.isPaused(), Attached: true}, nil
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
