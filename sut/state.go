package sut

import "time"

// FinalState is the system's state after the load, read straight from its services: every
// order, stock per product and the inventory events applied. It is what a StateReader
// returns and what the consistency checks judge.
type FinalState struct {
	Orders   []Order        `json:"orders"`
	Products []ProductStock `json:"products"`
	Applied  []Applied      `json:"applied"`
	// Converged reports that the state converged before the bound; ConvergedAt is that
	// moment on the run's clock, ConvergedAfter how long after the last heal (after the
	// load's end when the run had no fault) it was.
	Converged      bool          `json:"converged"`
	ConvergedAt    time.Duration `json:"converged_at"`
	ConvergedAfter time.Duration `json:"converged_after"`
	// Mismatch describes the last difference seen when not converged.
	Mismatch string `json:"mismatch,omitempty"`
	// Err is why the state could not be read, if it could not.
	Err string `json:"err,omitempty"`
}

// Order is one order as stored, with its state as the checks name them (checks.State*):
// pending until decided, then confirmed or rejected.
type Order struct {
	ID, Key, Product string
	Quantity         int64
	Status           string
}

// ProductStock is one product's inventory.
type ProductStock struct {
	ID             string
	Stock, Initial int64
}

// Applied is one inventory event the system decided: its outcome (a checks.State*) and
// how often it took the stock.
type Applied struct {
	OrderID, Product     string
	Quantity, Deliveries int64
	Outcome              string
	Applications         int64
}
