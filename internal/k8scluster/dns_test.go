package k8scluster

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/faultline-dev/faultline/runtime/ports"
)

// The cluster's DNS answers a pod's Service lookups from the API server's Services, over
// a real socket, and refuses names outside the cluster.
func TestClusterDNS(t *testing.T) {
	cs := fake.NewClientset(
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "order-1", Namespace: "run-a"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.17"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "headless", Namespace: "run-a"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}},
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
		{"headless.run-a.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, ""},
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
				var ip string
				if len(r.Answer) == 1 {
					ip = r.Answer[0].(*dns.A).A.String()
				}
				if r.Rcode != tt.rcode || ip != tt.ip {
					t.Errorf("answer rcode %s ip %q, want %s %q", dns.RcodeToString[r.Rcode], ip, dns.RcodeToString[tt.rcode], tt.ip)
				}
			})
		}
	}
}
