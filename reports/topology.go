package reports

import (
	"fmt"
	"html"
	"slices"
	"strings"

	"github.com/faultline-dev/faultline/result"
)

// topologySVG lays the system out in three rows (entry, services, infrastructure) and
// draws every link, with faulted links and components in red and named after the fault.
// A fixed layout keeps the drawing predictable without a graph-layout dependency.
func topologySVG(r *result.Run, faults []faultWindow) string {
	comps := r.Topology
	if len(comps) == 0 {
		return ""
	}
	rows := [3][]result.Component{}
	for _, c := range comps {
		rows[layer(c)] = append(rows[layer(c)], c)
	}
	const (
		width  = 900.0
		rowH   = 110.0
		boxW   = 110.0
		boxH   = 40.0
		margin = 30.0
		// linkLabelW bounds the label written at the middle of a faulted link.
		linkLabelW = 180.0
	)
	type node struct {
		c    result.Component
		x, y float64 // centre
		span float64 // width of the node's column, which its fault label may use
	}
	nodes := map[string]*node{}
	var ordered []*node
	usedRows := 0
	for _, row := range rows {
		if len(row) == 0 {
			continue
		}
		y := margin + boxH/2 + float64(usedRows)*rowH
		usedRows++
		step := (width - 2*margin) / float64(len(row))
		for i, c := range row {
			n := &node{c: c, x: margin + step*(float64(i)+0.5), y: y, span: step}
			nodes[c.Name] = n
			ordered = append(ordered, n)
		}
	}
	height := margin*2 + float64(usedRows-1)*rowH + boxH + 20

	// resolve maps a link end (a component, or a service meaning all its instances) to nodes.
	resolve := func(name string) []*node {
		if n, ok := nodes[name]; ok {
			return []*node{n}
		}
		var out []*node
		for _, n := range ordered {
			if n.c.Service == name {
				out = append(out, n)
			}
		}
		return out
	}
	matches := func(n *node, name string) bool { return n.c.Name == name || n.c.Service == name }

	// faultedLink names the faults on the edge a->b; faultedNode those on a component.
	faultedLink := func(a, b *node) []string {
		var names []string
		for _, f := range faults {
			if len(f.Targets) == 2 && matches(a, f.Targets[0]) && matches(b, f.Targets[1]) {
				names = append(names, f.Name)
			}
		}
		return names
	}
	isLink := func(f faultWindow) bool {
		if f.Link {
			return true
		}
		if len(f.Targets) != 2 {
			return false
		}
		for _, l := range r.Links {
			if l.From == f.Targets[0] && l.To == f.Targets[1] {
				return true
			}
		}
		return false
	}
	faultedNode := func(n *node) []string {
		var names []string
		for _, f := range faults {
			if isLink(f) {
				continue
			}
			for _, t := range f.Targets {
				if matches(n, t) {
					names = append(names, f.Name)
					break
				}
			}
		}
		return names
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="topology" id="topology" viewBox="0 0 %.0f %.0f" role="img" aria-label="topology">`, width, height)
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#555"/></marker>` +
		`<marker id="arrow-f" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#c0392b"/></marker></defs>`)
	type edge struct{ a, b *node }
	var edges []edge
	seen := map[[2]string]bool{}
	addEdge := func(a, b *node) {
		k := [2]string{a.c.Name, b.c.Name}
		if a == b || seen[k] {
			return
		}
		seen[k] = true
		edges = append(edges, edge{a, b})
	}
	for _, l := range r.Links {
		for _, a := range resolve(l.From) {
			for _, bn := range resolve(l.To) {
				addEdge(a, bn)
			}
		}
	}
	// A faulted link the topology does not list is drawn anyway: hiding it would hide
	// where the fault was.
	for _, f := range faults {
		if isLink(f) {
			for _, a := range resolve(f.Targets[0]) {
				for _, bn := range resolve(f.Targets[1]) {
					addEdge(a, bn)
				}
			}
		}
	}
	for _, e := range edges {
		x1, y1, x2, y2 := clipToBox(e.a.x, e.a.y, e.b.x, e.b.y, boxW/2, boxH/2)
		names := faultedLink(e.a, e.b)
		if len(names) == 0 {
			fmt.Fprintf(&b, `<line class="link" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888" stroke-width="1.2" marker-end="url(#arrow)"/>`, x1, y1, x2, y2)
			continue
		}
		fmt.Fprintf(&b, `<line class="link faulted" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#c0392b" stroke-width="3" stroke-dasharray="6 3" marker-end="url(#arrow-f)"><title>%s</title></line>`,
			x1, y1, x2, y2, html.EscapeString(strings.Join(names, ", ")))
		b.WriteString(svgLabel(`class="fault-label" fill="#c0392b"`, (x1+x2)/2, (y1+y2)/2-4, 11, linkLabelW, width, strings.Join(names, ", ")))
	}
	for _, n := range ordered {
		names := faultedNode(n)
		stroke, fill, sw := "#2c3e50", "#eef3f8", 1.2
		if len(names) > 0 {
			stroke, fill, sw = "#c0392b", "#fdecea", 3
		}
		fmt.Fprintf(&b, `<g class="node"><rect x="%.1f" y="%.1f" width="%.0f" height="%.0f" rx="6" fill="%s" stroke="%s" stroke-width="%.1f"/>`,
			n.x-boxW/2, n.y-boxH/2, boxW, boxH, fill, stroke, sw)
		b.WriteString(svgLabel(`font-weight="bold"`, n.x, n.y-2, 12, boxW-8, width, n.c.Name))
		b.WriteString(svgLabel(`fill="#555"`, n.x, n.y+12, 10, boxW-8, width, n.c.Kind))
		if len(names) > 0 {
			b.WriteString(svgLabel(`class="fault-label" fill="#c0392b"`, n.x, n.y+boxH/2+14, 11, n.span-8, width, strings.Join(names, ", ")))
		}
		b.WriteString(`</g>`)
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// layer puts the entry point on top and shared infrastructure at the bottom.
func layer(c result.Component) int {
	k := strings.ToLower(c.Kind + " " + c.Service)
	switch {
	case strings.Contains(k, "gateway"), strings.Contains(k, "balancer"), strings.Contains(k, "loadgen"), strings.Contains(k, "client"):
		return 0
	case slices.ContainsFunc([]string{"registry", "broker", "etcd", "nats", "proxy", "database", "store"}, func(s string) bool { return strings.Contains(k, s) }):
		return 2
	}
	return 1
}

// clipToBox shortens the segment so it starts and ends on the boxes' borders, which lets
// arrow heads show.
func clipToBox(x1, y1, x2, y2, hw, hh float64) (float64, float64, float64, float64) {
	dx, dy := x2-x1, y2-y1
	t := 1.0
	if dx != 0 {
		t = min(t, hw/abs(dx))
	}
	if dy != 0 {
		t = min(t, hh/abs(dy))
	}
	return x1 + dx*t, y1 + dy*t, x2 - dx*t, y2 - dy*t
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// charWidth is a generous average advance of a sans-serif character, in ems: SVG text does
// not wrap, so a label is shortened to what surely fits rather than measured.
const charWidth = 0.64

// svgLabel writes a centred label at (x, y), shortened with an ellipsis to fit maxW (and
// the drawing's width); a shortened label keeps its full text as its title, which a
// browser shows on hover and a screen reader reads.
func svgLabel(attrs string, x, y, fontSize, maxW, drawingW float64, text string) string {
	// A centred label must also stay inside the drawing.
	maxW = min(maxW, 2*x, 2*(drawingW-x))
	short, cut := fitText(text, maxW, fontSize)
	var b strings.Builder
	fmt.Fprintf(&b, `<text %s x="%.1f" y="%.1f" font-size="%g" text-anchor="middle">%s`, attrs, x, y, fontSize, html.EscapeString(short))
	if cut {
		fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(text))
	}
	b.WriteString(`</text>`)
	return b.String()
}

// fitText shortens s to about maxW pixels at fontSize, ending it with an ellipsis, and
// reports whether it did.
func fitText(s string, maxW, fontSize float64) (string, bool) {
	n := max(int(maxW/(charWidth*fontSize)), 2)
	r := []rune(s)
	if len(r) <= n {
		return s, false
	}
	return string(r[:n-1]) + "…", true
}
