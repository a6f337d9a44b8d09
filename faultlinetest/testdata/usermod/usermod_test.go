// Package usermod is a team's own module using Faultline from go test: it declares its
// services in a scenario's topology and gates on the scenario's verdict.
package usermod

import (
	"testing"

	"github.com/faultline-dev/faultline/faultlinetest"
)

func TestSiteSurvivesASlowLink(t *testing.T) {
	res := faultlinetest.Run(t, "testdata/site.yaml")
	if !res.Faults[0].Effect.Landed {
		t.Errorf("taking client->site down did not land: %+v", res.Faults[0].Effect)
	}
}
