package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/reports"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// scenarioArgs expands the arguments of suite and validate the same way: a directory means
// its *.yaml and *.yml files, sorted; anything else is a scenario file or a built-in name
// (see loadScenario).
func scenarioArgs(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil || !st.IsDir() {
			out = append(out, a)
			continue
		}
		var found []string
		for _, pat := range []string{"*.yaml", "*.yml"} {
			m, err := filepath.Glob(filepath.Join(a, pat))
			if err != nil {
				return nil, usagef("list %s: %v", a, err)
			}
			found = append(found, m...)
		}
		if len(found) == 0 {
			return nil, usagef("%s holds no *.yaml scenario", a)
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

func newSuiteCmd() *cobra.Command {
	var (
		dir   string
		seed  int64
		shard string
		list  bool
		rf    runRuntimeFlags
	)
	cmd := &cobra.Command{
		Use:   "suite DIR|FILE...",
		Short: "Run several scenarios one after the other and exit with the worst verdict",
		Long: "Suite runs every scenario in order (one at a time: each starts a whole system) and\n" +
			"prints a table. It exits with the worst verdict; a scenario that demonstrates a weak\n" +
			"design passes when its expected failure happened.\n\n" +
			"--shard K/N runs shard K of N: a stable 1/N of the scenarios, balanced by their expected\n" +
			"durations (scenarios.ExpectedDuration: load, start-up, convergence bound), so N CI jobs\n" +
			"given the same files run each scenario exactly once; faultline report --merge joins their\n" +
			"reports. --list prints the files that would run, one a line, and runs nothing.",
		Example: "  faultline suite scenarios/\n  faultline suite baseline replica-crash\n  faultline suite scenarios/ --runtime docker\n" +
			"  faultline suite scenarios/ --shard 2/4 --dir out/shard-2\n  faultline suite scenarios/ --shard 2/4 --list",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("%s needs a directory or scenario files", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := scenarioArgs(args)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("shard") {
				if files, err = shardFiles(files, shard); err != nil {
					return err
				}
			}
			if list {
				for _, f := range files {
					fmt.Fprintln(cmd.OutOrStdout(), f)
				}
				return nil
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rtOpts, err := rf.options(ctx, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			dir, release, err := harness.ClaimOutDir(dir, filepath.Join(".faultline", "suites", time.Now().UTC().Format("20060102T150405Z")))
			if err != nil {
				return err
			}
			defer release()
			began := time.Now()
			var rows []suiteRow
			var runs []*result.Run
			used := map[string]bool{}
			for _, f := range files {
				if ctx.Err() != nil {
					rows = append(rows, suiteRow{name: f, verdict: result.Aborted, reason: "not run: the suite was interrupted"})
					continue
				}
				row := suiteRow{name: f}
				sc, err := loadScenario(f)
				if err != nil {
					row.verdict, row.reason = result.Error, err.Error()
					rows = append(rows, row)
					continue
				}
				row.name = sc.Name
				fmt.Fprintf(cmd.ErrOrStderr(), "== %s\n", sc.Name)
				runDir := filepath.Join(dir, uniqueName(used, sanitize(sc.Name)))
				t0 := time.Now()
				res, err := runOne(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), sc, runDir, false, append(seedOpt(cmd, seed), rtOpts...)...)
				row.took = time.Since(t0)
				row.verdict, row.reason = res.Verdict, res.Reason
				if err != nil && res.Reason == "" {
					row.reason = err.Error()
				}
				if ef := res.ExpectedFailure; ef != nil && ef.Observed && res.Verdict == result.Passed {
					row.reason = "expected failure observed: " + ef.Check
				}
				rows = append(rows, row)
				if res.RunDir != "" {
					runs = append(runs, res)
				}
			}
			worst := printSuite(cmd.OutOrStdout(), rows, time.Since(began))
			// A shard writes its reports even when it ran nothing, so the merge finds every shard's.
			if err := writeSuiteReports(cmd.OutOrStdout(), dir, runs, cmd.Flags().Changed("shard")); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "faultline: %v\n", err)
			}
			return verdictErr(worst, fmt.Sprintf("worst of %d scenario(s)", len(rows)))
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory for the runs, one subdirectory per scenario (default .faultline/suites/<UTC time>)")
	cmd.Flags().Int64Var(&seed, "seed", 0, "override every scenario's seed")
	cmd.Flags().StringVar(&shard, "shard", "", "run only shard K of N (K/N, such as 2/4): a stable 1/N of the scenarios, balanced by their expected durations; merge the shards' reports with faultline report --merge")
	cmd.Flags().BoolVar(&list, "list", false, "print the scenario files the suite (or the --shard) would run, one a line, and run nothing")
	rf.register(cmd)
	return cmd
}

// shardFiles keeps the files of shard spec ("K/N"); the split is scenarios.Shards over each
// file's expected duration. A file that does not load stays in the split (with the
// duration of a run that fails fast), so every file is still run, and reported, by
// exactly one shard.
func shardFiles(files []string, spec string) ([]string, error) {
	k, n, err := scenarios.ParseShard(spec)
	if err != nil {
		return nil, usagef("--shard: %v (write K/N with 1 ≤ K ≤ N, such as --shard 1/2)", err)
	}
	items := make([]scenarios.ShardItem, len(files))
	for i, f := range files {
		sc, _ := loadScenario(f)
		items[i] = scenarios.ShardItem{File: f, Expected: scenarios.ExpectedDuration(sc)}
	}
	picked, err := scenarios.Shard(items, k, n)
	if err != nil {
		return nil, usagef("--shard %s: %v", spec, err)
	}
	out := make([]string, len(picked))
	for i, it := range picked {
		out[i] = it.File
	}
	return out, nil
}

type suiteRow struct {
	name    string
	verdict result.Verdict
	reason  string
	took    time.Duration
}

// printSuite prints the table and returns the worst verdict.
func printSuite(w io.Writer, rows []suiteRow, took time.Duration) result.Verdict {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tVERDICT\tTIME\tREASON")
	var vs []result.Verdict
	for _, r := range rows {
		reason := r.reason
		if len(reason) > 100 {
			reason = reason[:97] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.name, r.verdict, r.took.Round(100*time.Millisecond), strings.ReplaceAll(reason, "\n", " "))
		vs = append(vs, r.verdict)
	}
	_ = tw.Flush()
	worst := result.Worst(vs...)
	fmt.Fprintf(w, "%d scenario(s) in %s: %s\n", len(rows), took.Round(time.Second), worst)
	return worst
}

// uniqueName returns name, or name-2, name-3, ... when a scenario of the suite already
// used it, so that two files with one scenario name do not share a run directory.
func uniqueName(used map[string]bool, name string) string {
	out := name
	for i := 2; used[out]; i++ {
		out = fmt.Sprintf("%s-%d", name, i)
	}
	used[out] = true
	return out
}

func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == os.PathSeparator || r == 0 {
			return '_'
		}
		return r
	}, name)
}

// writeSuiteReports writes one JUnit file and one Markdown summary for the whole suite
// into dir, for CI to pick up in one place, and prints their paths after the table; each
// scenario's own HTML page is in its run directory. Without runs it writes nothing, unless
// always is set.
func writeSuiteReports(w io.Writer, dir string, runs []*result.Run, always bool) error {
	if len(runs) == 0 && !always {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write suite reports: %w", err)
	}
	var junit, md bytes.Buffer
	if err := reports.JUnit(&junit, runs...); err != nil {
		return err
	}
	if err := reports.Markdown(&md, runs...); err != nil {
		return err
	}
	jp, mp := filepath.Join(dir, reports.JUnitFile), filepath.Join(dir, reports.MarkdownFile)
	if err := os.WriteFile(jp, junit.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write suite reports: %w", err)
	}
	if err := os.WriteFile(mp, md.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write suite reports: %w", err)
	}
	fmt.Fprintf(w, "  junit:   %s\n", jp)
	fmt.Fprintf(w, "  summary: %s\n", mp)
	fmt.Fprintf(w, "  reports: %s\n", filepath.Join(dir, "<scenario>", reports.HTMLFile))
	return nil
}
