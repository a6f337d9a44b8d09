package refv1

// The words Order.status and AppliedEvent.outcome carry on the wire. They live here, beside
// the messages, so that a reader of the API (the harness's consistency adapter) needs no
// import of the services themselves and their storage and broker dependencies.
const (
	// StatusPending: the order is placed and product has not yet answered its reservation.
	StatusPending = "pending"
	// StatusConfirmed: product took the stock (an order status and an event outcome).
	StatusConfirmed = "confirmed"
	// StatusRejected: product could not honour the reservation and took nothing.
	StatusRejected = "rejected"
	// OutcomeReleased: stock taken, then given back by ReleaseStock (an event outcome).
	OutcomeReleased = "released"
)
