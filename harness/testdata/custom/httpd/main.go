// Command httpd is a tiny HTTP server for the harness's custom-topology tests: it answers
// every path with a greeting, can call an upstream (-upstream) and relay its answer, and
// serves Prometheus metrics at /metrics. Unlike python's http.server it has a full listen
// backlog, so a burst of connections on a loaded machine is not delayed by SYN retries.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	name := flag.String("name", "httpd", "name in greetings")
	upstream := flag.String("upstream", "", "host:port to call for /call")
	flag.Parse()
	var served atomic.Int64
	client := &http.Client{Timeout: 5 * time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# TYPE httpd_requests_total counter\nhttpd_requests_total %d\n", served.Load())
	})
	mux.HandleFunc("/call", func(w http.ResponseWriter, _ *http.Request) {
		served.Add(1)
		resp, err := client.Get("http://" + *upstream + "/")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		served.Add(1)
		fmt.Fprintf(w, "hello from %s\n", *name)
	})
	log.Printf("%s listening on %s", *name, *addr)
	log.Fatal(http.ListenAndServe(*addr, mux))
}
