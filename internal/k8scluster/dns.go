package k8scluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
)

// ClusterDomain is the DNS domain of the cluster's Services: a pod resolves "order-1" as
// order-1.<namespace>.svc.cluster.local through its resolv.conf search list.
const ClusterDomain = "cluster.local"

// dnsTTL is short: a Service deleted and made again gets another ClusterIP, and a headless
// Service's pod replaced gets another address.
const dnsTTL = 5

// clusterDNS answers A queries for <service>.<namespace>.svc.<ClusterDomain> with the
// Service's ClusterIP, or for a headless Service with its endpoints' pod addresses (not
// ready ones too when the Service publishes them; never terminating ones), from informer
// caches: the part of a cluster's DNS add-on that workloads need to find each other by
// Service name, as CoreDNS answers it. Every real cluster has one; this test cluster
// serves it from its owner process, on NodeIP:53, which the kubelet writes into every
// pod's resolv.conf.
type clusterDNS struct {
	services listersv1.ServiceLister
	slices   discoverylisters.EndpointSliceLister
	stop     chan struct{}
	servers  []*dns.Server
	wg       sync.WaitGroup
}

// startDNS serves the cluster's Service names on addr (udp and tcp) until close.
func startDNS(ctx context.Context, cs kubernetes.Interface, addr string) (*clusterDNS, error) {
	d := &clusterDNS{stop: make(chan struct{})}
	f := informers.NewSharedInformerFactory(cs, 0)
	d.services = f.Core().V1().Services().Lister()
	d.slices = f.Discovery().V1().EndpointSlices().Lister()
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
		for _, ip := range d.addresses(svc) {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: dnsTTL}, A: ip,
			})
		}
	}
	_ = w.WriteMsg(m)
}

// addresses are svc's IPv4 addresses: its ClusterIP, or a headless Service's endpoints.
func (d *clusterDNS) addresses(svc *corev1.Service) []net.IP {
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		if ip := net.ParseIP(svc.Spec.ClusterIP).To4(); ip != nil {
			return []net.IP{ip}
		}
		return nil
	}
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name})
	eps, err := d.slices.EndpointSlices(svc.Namespace).List(sel)
	if err != nil {
		return nil
	}
	var out []net.IP
	seen := map[string]bool{}
	for _, es := range eps {
		if es.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		for _, ep := range es.Endpoints {
			c := ep.Conditions
			if c.Terminating != nil && *c.Terminating {
				continue
			}
			if c.Ready != nil && !*c.Ready && !svc.Spec.PublishNotReadyAddresses {
				continue
			}
			for _, a := range ep.Addresses {
				if ip := net.ParseIP(a).To4(); ip != nil && !seen[a] {
					seen[a] = true
					out = append(out, ip)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b net.IP) int { return bytes.Compare(a, b) })
	return out
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
	if err != nil || svc.Spec.ClusterIP == "" {
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
