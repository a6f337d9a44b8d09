package harness

import (
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/scenarios"
)

// rampOf maps a scenario's ramp onto the load generator's, step for step. The ramp starts
// from nothing: a first step that is a plateau starts at its rate, a linear one climbs
// from zero.
func rampOf(l scenarios.LoadSpec) []loadgen.Step {
	var out []loadgen.Step
	for _, st := range l.Ramp {
		out = append(out, loadgen.Step{
			Rate:     loadgen.Rate{Freq: st.Rate.Freq, Per: st.Rate.Per},
			Duration: st.For.Std(),
			Shape:    loadgen.Shape(st.Shape),
			Mix:      stepMix(st.Mix),
		})
	}
	return out
}

// stepMix is a ramp step's own mix as the load generator weighs it, nil when the step
// keeps the mix before it.
func stepMix(mix map[string]float64) map[string]int {
	if mix == nil {
		return nil
	}
	return mixWeights(mix)
}

// LoadPlan describes in one line the load a scenario plans, as the load generator will
// pace it: "20→200/s in 5 steps of 4s: 20, 65, 110, 155, 200/s; 2,200 requests planned".
// It is printed before a run so that what the file means is visible before it is sent.
func LoadPlan(l scenarios.LoadSpec) string {
	spec := loadgen.Spec{Rate: loadgen.Rate{Freq: l.Rate.Freq, Per: l.Rate.Per}, Duration: l.Duration.Std(), Ramp: rampOf(l)}
	return spec.Plan()
}
