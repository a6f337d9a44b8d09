// Package reports turns a run's result and history into the documents people and CI read:
// JUnit XML for test dashboards, a Markdown summary short enough for a pull-request
// comment, and one self-contained HTML page with charts that opens offline (a workshop
// laptop, an air-gapped CI artifact). A comparison page puts several designs, each run a
// few times, side by side so an architect can tell a real difference from noise.
//
// The history is streamed once into per-second buckets holding counts and a bounded
// quantile sketch per journey, so rendering a run of any length needs memory proportional
// to its duration, never to its number of requests.
package reports
