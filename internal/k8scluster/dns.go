package k8scluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
)

// ClusterDomain is the DNS domain of the cluster's Services: a pod resolves "order-1" as
// order-1.<namespace>.svc.cluster.local through its resolv.conf search list.
const ClusterDomain = "cluster.local"

// dnsTTL is short: a Service deleted and made again gets another ClusterIP.
const dnsTTL = 5

// clusterDNS answers A queries for <service>.<namespace>.svc.<ClusterDomain> with the
// Service's ClusterIP, from an informer's cache: the part of a cluster's DNS add-on that
// workloads need to find each other by Service name. Every real cluster has one
// (CoreDNS); this test cluster serves it from its owner process, on NodeIP:53, which the
// kubelet writes into every pod's resolv.conf.
type clusterDNS struct {
	services listersv1.ServiceLister
	stop     chan struct{}
	servers  []*dns.Server
	wg       sync.WaitGroup
}

// startDNS serves the cluster's Service names on addr (udp and tcp) until close.
func startDNS(ctx context.Context, cs kubernetes.Interface, addr string) (*clusterDNS, error) {
	d := &clusterDNS{stop: make(chan struct{})}
	f := informers.NewSharedInformerFactory(cs, 0)
	d.services = f.Core().V1().Services().Lister()
	f.Start(d.stop)
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for typ, ok := range f.WaitForCacheSync(syncCtx.Done()) {
		if !ok {
			close(d.stop)
			return nil, fmt.Errorf("start cluster dns: sync %v cache: %w", typ, context.Cause(syncCtx))
		}
	}
	for _, network := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: addr, Net: network, Handler: dns.HandlerFunc(d.serve)}
		started := make(chan error, 1)
		srv.NotifyStartedFunc = func() { started <- nil }
		d.wg.Go(func() {
			if err := srv.ListenAndServe(); err != nil {
				select {
				case started <- err:
				default:
				}
			}
		})
		if err := <-started; err != nil {
			d.close()
			return nil, fmt.Errorf("start cluster dns on %s/%s: %w", addr, network, err)
		}
		d.servers = append(d.servers, srv)
	}
	return d, nil
}

// serve answers one query.
func (d *clusterDNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	svc, rcode := d.lookup(q.Name)
	m.Rcode = rcode
	if svc != nil && q.Qtype == dns.TypeA && q.Qclass == dns.ClassINET {
		if ip := net.ParseIP(svc.Spec.ClusterIP).To4(); ip != nil {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: dnsTTL}, A: ip,
			})
		}
	}
	_ = w.WriteMsg(m)
}

// lookup finds the Service a name means; outside the cluster domain it refuses, so a
// resolver moves on instead of trusting this server about the world.
func (d *clusterDNS) lookup(name string) (*corev1.Service, int) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	rest, ok := strings.CutSuffix(name, "."+ClusterDomain)
	if !ok {
		return nil, dns.RcodeRefused
	}
	// <service>.<namespace>.svc
	parts := strings.Split(rest, ".")
	if len(parts) != 3 || parts[2] != "svc" {
		return nil, dns.RcodeNameError
	}
	svc, err := d.services.Services(parts[1]).Get(parts[0])
	if err != nil || svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return nil, dns.RcodeNameError
	}
	return svc, dns.RcodeSuccess
}

// close stops the servers and the informer.
func (d *clusterDNS) close() error {
	if d == nil {
		return nil
	}
	var errs []error
	for _, s := range d.servers {
		if err := s.Shutdown(); err != nil {
			errs = append(errs, err)
		}
	}
	d.wg.Wait()
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop cluster dns: %w", err)
	}
	return nil
}
