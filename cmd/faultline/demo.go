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
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reports"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/runtime/local"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/system"
)

// DefaultDemoScenario is the showcase `faultline demo` runs: a slow dependency, the
// breaker that opens, the fallback that answers, and the breaker closing after the heal —
// every part of the report has something to show.
const DefaultDemoScenario = "dependency-latency"

func newDemoCmd() *cobra.Command {
	var (
		dir      string
		scenario string
		rf       runRuntimeFlags
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a showcase scenario against the reference system and write its HTML report",
		Long: "Demo runs a built-in scenario (default " + DefaultDemoScenario + ") against the reference\n" +
			"system (local processes, or containers with --runtime docker): it explains what the\n" +
			"scenario teaches, shows live progress,\n" +
			"prints the verdict and the measured figures, and ends with the path of the HTML report\n" +
			"(charts of latency, errors, breaker state and convergence, with the fault shaded).\n" +
			"It exits 0 whenever the report was written, whatever the verdict: a demo shows, it does\n" +
			"not gate. `faultline demo orders` is the step-by-step walk through placing orders.",
		Example: "  faultline demo\n  faultline demo --scenario cascading-failure-with-breaker\n  faultline demo --runtime docker\n  faultline demo orders --place 5",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sc, err := loadScenario(scenario)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rtOpts, err := rf.options(ctx, cmd.ErrOrStderr(), sc)
			if err != nil {
				return err
			}
			runDir := filepath.Join(dir, time.Now().UTC().Format("20060102T150405Z")+"-"+sc.Name)
			return showcase(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), sc, runDir, rtOpts...)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".faultline/demo", "directory for the demo's runs, one subdirectory per run")
	cmd.Flags().StringVar(&scenario, "scenario", DefaultDemoScenario, "built-in scenario name or scenario file to show")
	rf.register(cmd)
	cmd.AddCommand(newDemoOrdersCmd())
	return cmd
}

// showcase runs sc, prints its outcome and, as the very last line, the HTML report's
// path, which is what a workshop opens next.
func showcase(ctx context.Context, out, errOut io.Writer, sc *scenarios.Scenario, runDir string, extra ...harness.Option) error {
	fmt.Fprintf(out, "# %s\n%s\n\n", sc.Name, wrap(strings.TrimSpace(sc.Description), 88))
	for _, f := range sc.Faults {
		fmt.Fprintf(out, "fault %s: %s at %s for %s\n", f.Name, f.Type, f.At, f.For)
	}
	fmt.Fprintln(out) // runOne prints the load's plan
	res, err := runOne(ctx, out, errOut, sc, runDir, false, extra...)
	if err != nil {
		return err
	}
	page := filepath.Join(res.RunDir, reports.HTMLFile)
	if _, serr := os.Stat(page); serr != nil {
		return fmt.Errorf("write demo report: %s: %w", res.Verdict, serr)
	}
	if res.Verdict == result.Aborted {
		return verdictErr(res.Verdict, res.Reason)
	}
	fmt.Fprintf(out, "\nopen the report: %s\n", page)
	return nil
}

// wrap breaks text into lines of at most width runes at spaces, for a terminal.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for _, w := range strings.Fields(text) {
		l := len([]rune(w))
		if n > 0 && n+1+l > width {
			b.WriteByte('\n')
			n = 0
		} else if n > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += l
	}
	return b.String()
}

func newDemoOrdersCmd() *cobra.Command {
	var (
		f      systemFlags
		orders int
	)
	cmd := &cobra.Command{
		Use:   "orders",
		Short: "Start the system, place a few orders through the gateway, show the results and stop",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if orders < 1 || orders > 1000 {
				return usagef("demo orders: --place must be in 1..1000")
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
	f.register(cmd, ".faultline/demo/orders")
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
