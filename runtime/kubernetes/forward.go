package kubernetes

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// forwarders are the runtime's loopback listeners, one per published port of each
// instance, that carry every accepted connection through the API server's port-forward
// to the instance's current pod. Unlike kubectl port-forward, one listener outlives a pod:
// each connection is sent to whichever pod runs the instance when it arrives, so an
// address handed out once (a load target, a scrape target) stays valid across restarts
// and pod replacements. The SPDY connection to each pod is shared by its streams.
type forwarders struct {
	r     *Runtime
	mu    sync.Mutex
	conns map[string]httpstream.Connection // pod name -> its port-forward connection
	// carried maps each accepted connection being forwarded to the container it was sent
	// to, so that a kill can end them (see sever).
	carried map[net.Conn]string
	severed map[string]bool // containers being killed: see sever
	lns     []net.Listener
	wg      sync.WaitGroup
	reqID   atomic.Int64
}

func newForwarders(r *Runtime) *forwarders {
	return &forwarders{r: r, conns: map[string]httpstream.Connection{}, carried: map[net.Conn]string{}, severed: map[string]bool{}}
}

// listen opens 127.0.0.1:hostPort (any free port when 0) for p's containerPort.
func (f *forwarders) listen(p *Process, containerPort, hostPort int) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(hostPort)))
	if err != nil {
		return "", fmt.Errorf("forward port %d of %s: %w", containerPort, p.spec.Name, err)
	}
	f.mu.Lock()
	f.lns = append(f.lns, ln)
	f.mu.Unlock()
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Go(func() { f.forward(c, p, containerPort) })
		}
	})
	return ln.Addr().String(), nil
}

// forward carries one connection to p's current pod; without one running, the
// connection is closed at once, as a dead port would end it.
func (f *forwarders) forward(c net.Conn, p *Process, port int) {
	defer c.Close()
	st := p.observe()
	if st.pod == nil || st.pod.Status.Phase != corev1.PodRunning {
		return
	}
	if st.containerID != "" {
		f.mu.Lock()
		if f.severed[st.containerID] {
			f.mu.Unlock()
			return
		}
		f.carried[c] = st.containerID
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			delete(f.carried, c)
			f.mu.Unlock()
		}()
	}
	conn, err := f.conn(st.pod.Name)
	if err != nil {
		f.r.log.Debug("port-forward", "pod", st.pod.Name, "err", err)
		return
	}
	id := strconv.FormatInt(f.reqID.Add(1), 10)
	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(port))
	headers.Set(corev1.PortForwardRequestIDHeader, id)
	errStream, err := conn.CreateStream(headers)
	if err != nil {
		f.drop(st.pod.Name, conn)
		return
	}
	// Nothing is written to the error stream; the kubelet writes there if the dial fails.
	_ = errStream.Close()
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(headers)
	if err != nil {
		f.drop(st.pod.Name, conn)
		return
	}
	defer conn.RemoveStreams(data, errStream)
	done := make(chan struct{}, 2)
	go func() {
		msg, _ := io.ReadAll(errStream)
		if len(msg) > 0 {
			f.r.log.Debug("port-forward", "pod", st.pod.Name, "port", port, "err", string(msg))
			_ = c.Close()
		}
	}()
	go func() {
		_, _ = io.Copy(c, data)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(data, c)
		_ = data.Close() // half-close: the pod sees EOF
		done <- struct{}{}
	}()
	<-done
	_ = data.Reset()
}

// sever ends the client side of container: every connection carried to it is closed, and
// until forget, a new one is closed at once, as a dead process's port refuses it. Kill
// calls it at the moment it kills the container, so that the client sees the crash when
// a direct connection would: at once. Through the kubelet's port-forward it would not:
// the container runtime, once the pod's side has ended, waits up to a second for the
// client's side before it closes the stream (containerd's socat-like grace), a request in
// flight hangs that long, and the client keeps sending to the dead process meanwhile; and
// until the signal's exec returns (about 100 ms), new connections still reach it.
func (f *forwarders) sever(container string) {
	if container == "" {
		return
	}
	f.mu.Lock()
	f.severed[container] = true
	var ended []net.Conn
	for c, id := range f.carried {
		if id == container {
			ended = append(ended, c)
		}
	}
	f.mu.Unlock()
	for _, c := range ended {
		_ = c.Close()
	}
}

// forget ends sever's refusal of new connections to container: it has ended (and a new
// one runs in its place), or it was not killed after all.
func (f *forwarders) forget(container string) {
	f.mu.Lock()
	delete(f.severed, container)
	f.mu.Unlock()
}

// conn returns the port-forward connection to pod, dialling it the first time.
func (f *forwarders) conn(pod string) (httpstream.Connection, error) {
	f.mu.Lock()
	if c, ok := f.conns[pod]; ok {
		f.mu.Unlock()
		return c, nil
	}
	f.mu.Unlock()
	r := f.r
	if r.cfg == nil {
		return nil, errors.New("port-forward: no API server configuration")
	}
	tr, up, err := spdy.RoundTripperFor(r.cfg)
	if err != nil {
		return nil, fmt.Errorf("port-forward: %w", err)
	}
	url := r.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(r.ns).Name(pod).SubResource("portforward").URL()
	c, _, err := spdy.NewDialer(up, &http.Client{Transport: tr}, http.MethodPost, url).Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		return nil, fmt.Errorf("port-forward to %s: %w", pod, err)
	}
	f.mu.Lock()
	if old, ok := f.conns[pod]; ok {
		f.mu.Unlock()
		_ = c.Close()
		return old, nil
	}
	f.conns[pod] = c
	f.mu.Unlock()
	go func() {
		<-c.CloseChan()
		f.drop(pod, c)
	}()
	return c, nil
}

// drop forgets a broken connection so the next one dials again.
func (f *forwarders) drop(pod string, c httpstream.Connection) {
	f.mu.Lock()
	if f.conns[pod] == c {
		delete(f.conns, pod)
	}
	f.mu.Unlock()
	_ = c.Close()
}

// close stops every listener and connection.
func (f *forwarders) close() {
	f.mu.Lock()
	lns := f.lns
	f.lns = nil
	conns := f.conns
	f.conns = map[string]httpstream.Connection{}
	f.mu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
	for _, c := range conns {
		_ = c.Close()
	}
	f.wg.Wait()
}
