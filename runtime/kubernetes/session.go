package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
)

// A signal session is a signaler kept running in one container (faultline signal
// --serve, through one exec started when the container is ready), so that a process
// fault reaches the component when the timeline fires it. A new exec for each fault
// goes through the API server, the kubelet, the container runtime and runc before the
// signal is sent: tens of milliseconds on an idle node, several hundred on a busy one,
// and every figure timed from the fault's stamp (a lease's expiry after a crash) would
// count that delivery as the system's own delay.
type signalSession struct {
	container string
	in        *io.PipeWriter
	replies   chan string
	ready     atomic.Bool
	done      chan struct{} // closed when the exec has ended
	cancel    context.CancelFunc

	mu sync.Mutex // one request at a time
}

// Why a session could not carry a signal. errSessionNotReady means nothing was sent, so
// the caller may exec instead; after errSessionEnded the signal may have been delivered.
var (
	errSessionNotReady = errors.New("signal session not ready")
	errSessionEnded    = errors.New("signal session ended")
)

// startSession starts a signaler session in pod's container, whose id is container,
// for the component started from exe. It returns at once; the session is ready when the
// signaler has said so.
func (r *Runtime) startSession(pod, container, exe string) *signalSession {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &signalSession{container: container, in: pw, replies: make(chan string, 8), done: make(chan struct{}), cancel: cancel}
	lw := &lineWriter{line: s.line}
	go func() {
		defer close(s.done)
		err := r.stream(ctx, pod, []string{SignalerPath, SignalCommand, "--exe", exe, "--serve"}, pr, lw)
		// The executor's stdin copier may still be reading: it must see the end of its
		// input, not a closed pipe, which it would log.
		_ = pw.Close()
		if err != nil && ctx.Err() == nil {
			r.log.Debug("signal session ended", "pod", pod, "err", err)
		}
	}()
	return s
}

// line takes one line the signaler wrote.
func (s *signalSession) line(l string) {
	if !s.ready.Load() {
		s.ready.Store(l == sessionReady)
		return
	}
	select {
	case s.replies <- l:
	default: // a reply nobody waits for (its request timed out): dropped
	}
}

// send asks the signaler for sig and waits for its answer.
func (s *signalSession) send(ctx context.Context, sig string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ready.Load() {
		return errSessionNotReady
	}
	select {
	case <-s.done:
		return errSessionNotReady
	default:
	}
	for len(s.replies) > 0 { // a late answer to an earlier request that timed out
		<-s.replies
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := io.WriteString(s.in, sig+"\n")
		wrote <- err
	}()
	for {
		select {
		case err := <-wrote:
			if err != nil {
				return errSessionEnded
			}
			wrote = nil
		case l := <-s.replies:
			if msg, bad := strings.CutPrefix(l, "error: "); bad {
				return errors.New(msg)
			}
			return nil
		case <-s.done:
			return errSessionEnded
		case <-ctx.Done():
			return fmt.Errorf("signal session: %w", ctx.Err())
		}
	}
}

// close ends the session's exec.
func (s *signalSession) close() {
	s.cancel()
	_ = s.in.Close()
}

// lineWriter hands each complete line written to it to line.
type lineWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	line func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		l, err := w.buf.ReadString('\n')
		if err != nil { // an incomplete line: kept for the next write
			w.buf.Reset()
			w.buf.WriteString(l)
			return len(p), nil
		}
		w.line(strings.TrimRight(l, "\r\n"))
	}
}

// stream runs cmd in pod's container through the API server with in as its stdin and
// out as its stdout and stderr, until it ends or ctx does.
func (r *Runtime) stream(ctx context.Context, pod string, cmd []string, in io.Reader, out io.Writer) error {
	if r.cfg == nil {
		return errors.New("exec: no API server configuration")
	}
	req := r.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(r.ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: ContainerName, Command: cmd, Stdin: in != nil, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(r.cfg, "POST", req.URL())
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	return ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: in, Stdout: out, Stderr: out})
}
