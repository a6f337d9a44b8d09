package loadgen

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Journey is one kind of user action in the load mix. The load generator plans every
// request in sequence order under one lock, then sends it, then lets the journey read the
// response. Splitting the three keeps the schedule a pure function of the seed (Plan sees
// only the seeded RNG and earlier plans) while still letting a journey use what the system
// answered (Resolve and Observe), such as the id of something it created earlier in the run.
//
// A Journey value holds configuration only; everything that changes during a run lives in
// the State, so one Spec can be run any number of times with identical schedules.
type Journey interface {
	// Name is the key of the journey in Spec.Mix and in results.
	Name() string
	// Plan fills in p's request. It must draw randomness only from s.Rand and look at the
	// run only through s.Recall, so that it is deterministic.
	Plan(p *Plan, s *State) error
	// Resolve adjusts p just before it is sent, using what the run has observed so far
	// (s.Known). Journeys whose requests are fully planned do nothing.
	Resolve(p *Plan, s *State) error
	// Observe reads the response into r (the id it created, success) and tells the run what it
	// learnt (s.Learn). It is called from one goroutine, in completion order.
	Observe(p *Plan, r *Result, body []byte, s *State)
}

// Plan is one scheduled request. The fields up to Pick are the schedule, identical in every
// run with the same seed and spec; Method, Path, Header and Body are what is sent.
type Plan struct {
	Seq     uint64        // 1-based position in the schedule
	Journey string        // journey name as drawn from the mix
	Client  int           // virtual client, 0-based
	Key     string        // idempotency key derived from the seed and Seq
	At      time.Duration // planned offset from the start of the load
	// Attrs are what the journey notes about the request when it plans it, for the
	// checks to join on (the reference journeys: what a placement buys, of whom and how
	// many). They are part of the schedule and are copied to the request's Result.
	Attrs map[string]string
	Ref   uint64 // Seq of the earlier request this one repeats; 0 when none
	Pick  uint64 // a seeded draw for choices made at send time

	Method    string      // HTTP method
	Path      string      // path and query relative to the target, or an absolute URL
	Header    http.Header // request headers
	Body      []byte      // request body
	Performed string      // journey actually performed, when it differs from Journey
}

// State is a run's mutable state as journeys see it. Plan-time methods (Rand, Remember,
// Recall) are only valid inside Journey.Plan, which the generator serialises; Learn and
// Known are safe from any goroutine.
type State struct {
	rng      *rand.Rand
	seed     int64
	remember map[string]*ring[Plan]

	mu    sync.Mutex
	known map[string]*ring[string]
}

// memory bounds how many earlier plans and learnt ids a run keeps per tag, so that a long
// run holds a fixed amount of state.
const memory = 4096

func newState(seed int64) *State {
	return &State{
		rng:      rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15)),
		seed:     seed,
		remember: map[string]*ring[Plan]{},
		known:    map[string]*ring[string]{},
	}
}

// Rand is the schedule's one seeded RNG.
func (s *State) Rand() *rand.Rand { return s.rng }

// Remember keeps p under tag so that a later plan can repeat it (a retry re-sends an
// earlier request byte for byte). Only the most recent 4096 plans per tag are kept.
func (s *State) Remember(tag string, p Plan) {
	r := s.remember[tag]
	if r == nil {
		r = &ring[Plan]{}
		s.remember[tag] = r
	}
	r.add(p)
}

// Recall picks one remembered plan under tag with the seeded RNG.
func (s *State) Recall(tag string) (Plan, bool) {
	r := s.remember[tag]
	if r == nil || r.len() == 0 {
		return Plan{}, false
	}
	return r.get(s.rng.IntN(r.len())), true
}

// Learn records an identifier the system returned (the id of something an acknowledged request created) under tag.
func (s *State) Learn(tag, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.known[tag]
	if r == nil {
		r = &ring[string]{}
		s.known[tag] = r
	}
	r.add(id)
}

// Known returns one learnt identifier under tag chosen by pick (usually Plan.Pick), or false
// when nothing has been learnt yet.
func (s *State) Known(tag string, pick uint64) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.known[tag]
	if r == nil || r.len() == 0 {
		return "", false
	}
	return r.get(int(pick % uint64(r.len()))), true
}

// ring is a fixed-size buffer of the most recent values.
type ring[T any] struct {
	buf  []T
	next int
}

func (r *ring[T]) add(v T) {
	if len(r.buf) < memory {
		r.buf = append(r.buf, v)
		return
	}
	r.buf[r.next] = v
	r.next = (r.next + 1) % memory
}

func (r *ring[T]) len() int    { return len(r.buf) }
func (r *ring[T]) get(i int) T { return r.buf[i] }

// KeyFor derives the idempotency key of request seq from the seed: a UUID-shaped string
// (version 4 bits set) so gateways that validate key syntax accept it, yet reproducible.
func KeyFor(seed int64, seq uint64) string {
	hi := mix64(uint64(seed) ^ mix64(seq))
	lo := mix64(hi ^ seq ^ 0xd1b54a32d192ed03)
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// mix64 is SplitMix64's finaliser: a cheap bijective hash with good avalanche.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
