package scenarios

import "github.com/faultline-dev/faultline/faults"

var (
	_ validator = (faults.Validator)(nil)
	_ targeted  = (faults.Targeted)(nil)
)

// registryDecoder is the default FaultDecoder: the faults package's registry.
type registryDecoder struct{}

func (registryDecoder) Kinds() []string { return faults.Kinds() }

func (registryDecoder) New(kind string) (any, error) { return faults.New(kind) }

// DefaultFaultDecoder returns the decoder backed by the faults registry.
func DefaultFaultDecoder() FaultDecoder { return registryDecoder{} }
