package scenarios_test

// The reference package registers the default system (its services and proxied links)
// when imported; this file brings it into the test binary, so that the package's own
// tests validate against the one list the interposer also builds from.
import _ "github.com/faultline-dev/faultline/reference"
