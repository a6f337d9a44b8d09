package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/reports"
	"github.com/faultline-dev/faultline/result"
)

func newReportCmd() *cobra.Command {
	var (
		out   string
		merge bool
	)
	cmd := &cobra.Command{
		Use:   "report RESULT.json|RUN_DIR... | report --merge SUITE_DIR|JUNIT.xml...",
		Short: "Render the HTML, Markdown and JUnit reports of stored runs",
		Long: "Report re-renders report.html, summary.md and junit.xml from a run's result.json and\n" +
			"its history.jsonl, so CI can archive the two records and render the reports later, or\n" +
			"again after faultline is upgraded. The history is looked for next to result.json first,\n" +
			"then in the run directory the result names; without it the page has no charts.\n\n" +
			"With --merge it joins the reports of a sharded suite (faultline suite --shard K/N): each\n" +
			"argument is a shard's suite directory (its junit.xml and summary.md) or a junit.xml, and\n" +
			"OUT gets one junit.xml and one summary.md, as one run of the whole suite would write them.\n" +
			"A scenario found in two shards is an error.",
		Example: "  faultline report .faultline/runs/20250304T050607Z-baseline/result.json\n" +
			"  faultline report artifacts/result.json --out public/\n" +
			"  faultline report --merge shard-1/ shard-2/ --out merged/",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && merge {
				return usagef("%s --merge needs the shards' suite directories or junit.xml files", cmd.CommandPath())
			}
			if len(args) == 0 {
				return usagef("%s needs a result.json or a run directory", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if merge {
				if out == "" {
					out = filepath.Join(".faultline", "suites", time.Now().UTC().Format("20060102T150405Z")+"-merged")
				}
				return mergeShards(cmd.OutOrStdout(), cmd.ErrOrStderr(), out, args)
			}
			for i, a := range args {
				dir := out
				if dir != "" && len(args) > 1 {
					dir = filepath.Join(out, strconv.Itoa(i+1))
				}
				if err := renderStored(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), a, dir); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory for the reports (default: next to each result.json; with several results, OUT/1, OUT/2...; with --merge, .faultline/suites/<UTC time>-merged)")
	cmd.Flags().BoolVar(&merge, "merge", false, "join the junit.xml and summary.md of a sharded suite's shards (suite directories or junit.xml files) into one of each in --out")
	return cmd
}

// mergeShards writes into out one junit.xml (and one summary.md, when every shard has one
// next to its junit.xml) joining the shards' reports; see reports.MergeJUnit.
func mergeShards(w, errOut io.Writer, out string, args []string) error {
	var junits, mds []string
	allMD := true
	for _, a := range args {
		jp := a
		if st, err := os.Stat(a); err == nil && st.IsDir() {
			jp = filepath.Join(a, reports.JUnitFile)
		}
		junits = append(junits, jp)
		mp := filepath.Join(filepath.Dir(jp), reports.MarkdownFile)
		if st, err := os.Stat(mp); err != nil || !st.Mode().IsRegular() {
			if allMD {
				fmt.Fprintf(errOut, "faultline: %s not found; the merge writes no summary.md\n", mp)
			}
			allMD = false
		}
		mds = append(mds, mp)
	}
	var junit, md bytes.Buffer
	worst, err := reports.MergeJUnit(&junit, junits...)
	if err != nil {
		return usagef("%v", err)
	}
	if allMD {
		if err := reports.MergeMarkdown(&md, mds...); err != nil {
			return usagef("%v", err)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("merge reports: %w", err)
	}
	jp := filepath.Join(out, reports.JUnitFile)
	if err := os.WriteFile(jp, junit.Bytes(), 0o644); err != nil {
		return fmt.Errorf("merge reports: %w", err)
	}
	fmt.Fprintf(w, "  junit:   %s\n", jp)
	if allMD {
		mp := filepath.Join(out, reports.MarkdownFile)
		if err := os.WriteFile(mp, md.Bytes(), 0o644); err != nil {
			return fmt.Errorf("merge reports: %w", err)
		}
		fmt.Fprintf(w, "  summary: %s\n", mp)
	}
	fmt.Fprintf(w, "%d shard(s) merged: %s\n", len(args), worst)
	return verdictErr(worst, fmt.Sprintf("worst of %d shard(s)", len(args)))
}

// renderStored renders the reports of the result at arg (a result.json or the directory
// holding one) into outDir, by default the result's own directory.
func renderStored(ctx context.Context, w, errOut io.Writer, arg, outDir string) error {
	resultPath := arg
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		resultPath = filepath.Join(arg, harness.ResultFile)
	}
	res, err := result.LoadFile(resultPath)
	if err != nil {
		return usagef("load result: %v", err)
	}
	if outDir == "" {
		outDir = filepath.Dir(resultPath)
	}
	hist := storedHistory(resultPath, res)
	if hist == "" && res.History != "" {
		fmt.Fprintf(errOut, "faultline: %s: history %q not found next to it or in %s; the page has no charts\n", resultPath, res.History, res.RunDir)
	}
	paths, err := writeReports(ctx, outDir, res, hist)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s: %s\n", res.Scenario, res.Verdict)
	printPaths(w, paths)
	return nil
}

// storedHistory finds a stored run's history: next to its result.json first (an archived
// pair of files), then where the run wrote it. "" when there is none.
func storedHistory(resultPath string, res *result.Run) string {
	if res.History == "" {
		return ""
	}
	var candidates []string
	if filepath.IsAbs(res.History) {
		candidates = append(candidates, res.History, filepath.Join(filepath.Dir(resultPath), filepath.Base(res.History)))
	} else {
		candidates = append(candidates, filepath.Join(filepath.Dir(resultPath), res.History))
		if res.RunDir != "" {
			candidates = append(candidates, filepath.Join(res.RunDir, res.History))
		}
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && st.Mode().IsRegular() {
			return c
		}
	}
	return ""
}

// writeReports writes report.html, summary.md and junit.xml into dir. A run whose
// history is missing is rendered without charts rather than not at all.
func writeReports(ctx context.Context, dir string, res *result.Run, hist string) (reports.Paths, error) {
	if res == nil {
		return reports.Paths{}, errors.New("write reports: no result")
	}
	run := res
	if hist == "" && res.History != "" {
		cp := *res
		cp.History = "" // reports would otherwise look for it and fail
		run = &cp
	}
	return reports.WriteAll(ctx, dir, run, hist)
}

// printPaths prints where the reports are, the HTML page last: it is the one to open.
func printPaths(w io.Writer, p reports.Paths) {
	fmt.Fprintf(w, "  junit:   %s\n", p.JUnit)
	fmt.Fprintf(w, "  summary: %s\n", p.Markdown)
	fmt.Fprintf(w, "  report:  %s\n", p.HTML)
}
