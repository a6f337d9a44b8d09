package reports

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/faultline-dev/faultline/result"
)

// Report file names, written next to the run's result.json.
const (
	HTMLFile     = "report.html"
	MarkdownFile = "summary.md"
	JUnitFile    = "junit.xml"
)

// Paths are the files WriteAll wrote.
type Paths struct {
	HTML     string
	Markdown string
	JUnit    string
}

// WriteAll writes report.html, summary.md and junit.xml into dir (created when missing)
// and returns their paths. Each file appears whole or not at all (written aside, then
// renamed), so a CI step that picks them up never reads half a report. The summary links
// to the HTML page by the path written here.
func WriteAll(ctx context.Context, dir string, run *result.Run, historyPath string) (Paths, error) {
	if run == nil {
		return Paths{}, fmt.Errorf("write reports: run is nil")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Paths{}, fmt.Errorf("write reports: %w", err)
	}
	p := Paths{
		HTML:     filepath.Join(dir, HTMLFile),
		Markdown: filepath.Join(dir, MarkdownFile),
		JUnit:    filepath.Join(dir, JUnitFile),
	}
	var buf bytes.Buffer
	if err := HTML(ctx, &buf, run, historyPath); err != nil {
		return Paths{}, err
	}
	if err := writeFile(p.HTML, buf.Bytes()); err != nil {
		return Paths{}, err
	}
	buf.Reset()
	if err := markdown(&buf, []*result.Run{run}, []string{p.HTML}); err != nil {
		return Paths{}, err
	}
	if err := writeFile(p.Markdown, buf.Bytes()); err != nil {
		return Paths{}, err
	}
	buf.Reset()
	if err := JUnit(&buf, run); err != nil {
		return Paths{}, err
	}
	if err := writeFile(p.JUnit, buf.Bytes()); err != nil {
		return Paths{}, err
	}
	return p, nil
}

func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
