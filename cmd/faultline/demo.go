package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/runtime/local"
	"github.com/faultline-dev/faultline/system"
)

func newDemoCmd() *cobra.Command {
	var (
		f      systemFlags
		orders int
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start the system, place a few orders through the gateway, show the results and stop",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if orders < 1 || orders > 1000 {
				return usagef("demo: --place must be in 1..1000")
			}
			spec, err := f.spec()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return demo(ctx, cmd.OutOrStdout(), spec, orders)
		},
	}
	f.register(cmd, ".faultline/demo")
	cmd.Flags().IntVar(&orders, "place", 3, "orders to place through the gateway")
	return cmd
}

func demo(ctx context.Context, out io.Writer, spec system.Spec, orders int) error {
	rt := local.New()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), system.DefaultStopTimeout)
		defer cancel()
		_ = rt.Close(cctx)
	}()
	fmt.Fprintf(out, "starting the reference system in %s ...\n", spec.Dir)
	sys, err := system.Start(ctx, rt, spec)
	if err != nil {
		return err
	}
	defer func() { _ = stopSystem(sys) }()
	fmt.Fprintf(out, "ready in %s: %d processes, gateway %s\n\n", sys.ReadyDuration().Round(time.Millisecond), len(sys.Components()), sys.GatewayURL())
	token, err := sys.Token("demo", time.Hour)
	if err != nil {
		return err
	}
	c := &demoClient{base: sys.GatewayURL(), token: token, out: out, http: &http.Client{Timeout: 10 * time.Second}}

	catalog := sys.Spec().Catalog
	c.do(ctx, http.MethodGet, "/products/"+config.ProductID(0), "", nil)
	run := time.Now().UnixNano()
	var firstID string
	for i := range orders {
		body := fmt.Sprintf(`{"merchant_id":%q,"product_id":%q,"quantity":%d}`,
			catalog.ProductMerchant(i%catalog.Products), config.ProductID(i%catalog.Products), 1+i%3)
		key := fmt.Sprintf("demo-%d-%d", run, i)
		resp := c.do(ctx, http.MethodPost, "/orders", key, []byte(body))
		if firstID == "" {
			firstID = orderID(resp)
		}
	}
	fmt.Fprintln(out, "# the same Idempotency-Key again: the same order, not a second one")
	c.do(ctx, http.MethodPost, "/orders", fmt.Sprintf("demo-%d-0", run),
		[]byte(fmt.Sprintf(`{"merchant_id":%q,"product_id":%q,"quantity":1}`, catalog.ProductMerchant(0), config.ProductID(0))))
	if firstID != "" {
		c.do(ctx, http.MethodGet, "/orders/"+firstID, "", nil)
	}
	fmt.Fprintln(out, "# stock is updated asynchronously (outbox -> broker -> product); a moment later:")
	time.Sleep(500 * time.Millisecond)
	c.do(ctx, http.MethodGet, "/products/"+config.ProductID(0), "", nil)
	fmt.Fprintln(out, "stopping ...")
	return nil
}

type demoClient struct {
	base, token string
	out         io.Writer
	http        *http.Client
}

func (c *demoClient) do(ctx context.Context, method, path, key string, body []byte) []byte {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintf(c.out, "%s %s: %v\n\n", method, path, err)
		return nil
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	fmt.Fprintf(c.out, "$ %s %s", method, path)
	if key != "" {
		fmt.Fprintf(c.out, "  (Idempotency-Key: %s)", key)
	}
	fmt.Fprintln(c.out)
	resp, err := c.http.Do(req)
	if err != nil {
		fmt.Fprintf(c.out, "  error: %v\n\n", err)
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	fmt.Fprintf(c.out, "  %s", resp.Status)
	if v := resp.Header.Get("Idempotent-Replayed"); v != "" {
		fmt.Fprintf(c.out, "  Idempotent-Replayed: %s", v)
	}
	if v := resp.Header.Get("X-Served-By"); v != "" {
		fmt.Fprintf(c.out, "  X-Served-By: %s", v)
	}
	fmt.Fprintf(c.out, "\n  %s\n\n", strings.TrimSpace(string(b)))
	return b
}

// orderID finds the order id in a gateway response, flat ({"id":...}) or nested
// ({"order":{"id":...}}).
func orderID(b []byte) string {
	var v struct {
		ID    string `json:"id"`
		Order struct {
			ID string `json:"id"`
		} `json:"order"`
	}
	if json.Unmarshal(b, &v) != nil {
		return ""
	}
	if v.ID != "" {
		return v.ID
	}
	return v.Order.ID
}
