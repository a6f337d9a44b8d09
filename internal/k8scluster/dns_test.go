package k8scluster

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/faultline-dev/faultline/runtime/ports"
)

// The cluster's DNS answers a pod's Service lookups from the API server's Services, over
// a real socket, and refuses names outside the cluster. A headless Service is answered
// with its pods' addresses, as CoreDNS answers it: not-ready ones only when the Service
// publishes them, terminating ones never.
func TestClusterDNS(t *testing.T) {
	yes, no := new(true), new(false)
	slice := func(svc string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: svc + "-x1", Namespace: "run-a", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
			AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps,
		}
	}
	ep := func(ip string, ready, terminating *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ready, Terminating: terminating}}
	}
	cs := fake.NewClientset(
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "order-1", Namespace: "run-a"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.17"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "headless", Namespace: "run-a"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "product-1", Namespace: "run-a"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, PublishNotReadyAddresses: true}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "strict", Namespace: "run-a"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}},
		// product-1's pod is starting (not ready, published), its old pod is terminating.
		slice("product-1", ep("10.244.0.9", no, nil), ep("10.244.0.7", yes, yes)),
		slice("strict", ep("10.244.0.3", no, no), ep("10.244.0.4", yes, no)),
	)
	p, err := ports.Free(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p[0]))
	d, err := startDNS(context.Background(), cs, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.close() })

	tests := []struct {
		name  string
		qtype uint16
		rcode int
		ip    string
	}{
		{"order-1.run-a.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, "10.96.0.17"},
		{"ORDER-1.run-a.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, "10.96.0.17"},
		{"order-1.run-b.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, ""},
		{"headless.run-a.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, ""},
		{"product-1.run-a.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, "10.244.0.9"},
		{"strict.run-a.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, "10.244.0.4"},
		{"order-1.run-a.svc.cluster.local.", dns.TypeAAAA, dns.RcodeSuccess, ""},
		{"example.com.", dns.TypeA, dns.RcodeRefused, ""},
	}
	for _, tt := range tests {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tt.name+"/"+network, func(t *testing.T) {
				m := new(dns.Msg)
				m.SetQuestion(tt.name, tt.qtype)
				c := &dns.Client{Net: network, Timeout: 2 * time.Second}
				r, _, err := c.Exchange(m, addr)
				if err != nil {
					t.Fatal(err)
				}
				var ips []string
				for _, a := range r.Answer {
					ips = append(ips, a.(*dns.A).A.String())
				}
				ip := strings.Join(ips, ",")
				if r.Rcode != tt.rcode || ip != tt.ip {
					t.Errorf("answer rcode %s ip %q, want %s %q", dns.RcodeToString[r.Rcode], ip, dns.RcodeToString[tt.rcode], tt.ip)
				}
			})
		}
	}
}
