package reference

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"strconv"

	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/reference-services/config"
)

// Names of the reference system's journeys.
const (
	JourneyBrowse     = "browse"
	JourneyViewOrder  = "view_order"
	JourneyPlaceOrder = "place_order"
	JourneyRetryOrder = "retry_order"
)

// Attributes the reference journeys note on a request (loadgen.Plan.Attrs, copied to its
// Result and so to the history): the product a request reads or buys, and for a placement
// the merchant that sells it and the quantity bought.
const (
	AttrProduct  = "product"
	AttrMerchant = "merchant"
	AttrQuantity = "quantity"
)

// Tags under which the reference journeys share run state: placements remembers planned
// POST /orders (for retry_order), orders learns acknowledged order ids (for view_order),
// per client (see ordersOf).
const (
	TagPlacements = "placements"
	TagOrders     = "orders"
)

// ordersOf is the tag of the order ids client has placed: an order is visible to the client
// that placed it only, so a client views its own orders.
func ordersOf(client int) string { return TagOrders + "/" + strconv.Itoa(client) }

// Mix is a plausible shop: mostly browsing, some order pages, a steady trickle of
// purchases and a few client retries of a purchase.
func Mix() map[string]int {
	return map[string]int{JourneyBrowse: 60, JourneyViewOrder: 20, JourneyPlaceOrder: 15, JourneyRetryOrder: 5}
}

type refConfig struct {
	catalog config.Catalog
	token   func(client int) string
	maxQty  int
}

// JourneyOption configures the reference journeys.
type JourneyOption func(*refConfig)

// WithCatalog names the catalog the system was seeded with; the default is
// config.DefaultCatalog, the one the reference system starts with.
func WithCatalog(c config.Catalog) JourneyOption { return func(r *refConfig) { r.catalog = c } }

// WithMaxQuantity bounds the quantity of one order line (default 3), so that a run never
// exhausts stock by accident.
func WithMaxQuantity(n int) JourneyOption { return func(r *refConfig) { r.maxQty = n } }

// Journeys returns browse, view_order, place_order and retry_order against the
// reference gateway. token gives the bearer token of a virtual client; nil sends none.
func Journeys(token func(client int) string, opts ...JourneyOption) []loadgen.Journey {
	c := &refConfig{catalog: config.DefaultCatalog(), token: token, maxQty: 3}
	for _, o := range opts {
		o(c)
	}
	c.catalog.Products = max(c.catalog.Products, 1)
	c.maxQty = max(c.maxQty, 1)
	return []loadgen.Journey{browse{c}, viewOrder{c}, placeOrder{c}, retryOrder{c}}
}

var (
	_ loadgen.Journey = browse{}
	_ loadgen.Journey = viewOrder{}
	_ loadgen.Journey = placeOrder{}
	_ loadgen.Journey = retryOrder{}
)

func (c *refConfig) header(client int) http.Header {
	h := http.Header{"Accept": {"application/json"}}
	if c.token != nil {
		h.Set("Authorization", "Bearer "+c.token(client))
	}
	return h
}

// browse lists the products (one time in four) or reads one product.
type browse struct{ c *refConfig }

func (browse) Name() string { return JourneyBrowse }

func (b browse) Plan(p *loadgen.Plan, s *loadgen.State) error {
	list := s.Rand().IntN(4) == 0
	i := s.Rand().IntN(b.c.catalog.Products)
	p.Method, p.Header = http.MethodGet, b.c.header(p.Client)
	if list {
		p.Path = "/products"
		return nil
	}
	p.Attrs = map[string]string{AttrProduct: config.ProductID(i)}
	p.Path = "/products/" + p.Attrs[AttrProduct]
	return nil
}

func (browse) Resolve(*loadgen.Plan, *loadgen.State) error { return nil }

func (browse) Observe(_ *loadgen.Plan, r *loadgen.Result, _ []byte, _ *loadgen.State) {
	r.OK = r.Status == http.StatusOK
}

// viewOrder reads an order its client placed earlier in the run; before any is acknowledged
// it browses a product instead (Performed says so).
type viewOrder struct{ c *refConfig }

func (viewOrder) Name() string { return JourneyViewOrder }

func (v viewOrder) Plan(p *loadgen.Plan, s *loadgen.State) error {
	p.Attrs = map[string]string{AttrProduct: config.ProductID(s.Rand().IntN(v.c.catalog.Products))}
	p.Pick = s.Rand().Uint64()
	p.Method, p.Header = http.MethodGet, v.c.header(p.Client)
	return nil
}

func (viewOrder) Resolve(p *loadgen.Plan, s *loadgen.State) error {
	if id, ok := s.Known(ordersOf(p.Client), p.Pick); ok {
		p.Path = "/orders/" + url.PathEscape(id)
		return nil
	}
	p.Path = "/products/" + p.Attrs[AttrProduct]
	p.Performed = JourneyBrowse
	return nil
}

func (viewOrder) Observe(p *loadgen.Plan, r *loadgen.Result, body []byte, _ *loadgen.State) {
	r.OK = r.Status == http.StatusOK
	if p.Performed == "" && r.OK {
		r.Created = orderID(body)
	}
}

// placeOrder buys a random quantity of a random product from the merchant that sells it,
// with a fresh idempotency key.
type placeOrder struct{ c *refConfig }

func (placeOrder) Name() string { return JourneyPlaceOrder }

func (o placeOrder) Plan(p *loadgen.Plan, s *loadgen.State) error {
	i := s.Rand().IntN(o.c.catalog.Products)
	req := orderRequest{MerchantID: o.c.catalog.ProductMerchant(i), ProductID: config.ProductID(i), Quantity: 1 + s.Rand().IntN(o.c.maxQty)}
	p.Attrs = map[string]string{AttrProduct: req.ProductID, AttrMerchant: req.MerchantID, AttrQuantity: strconv.Itoa(req.Quantity)}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	p.Method, p.Path, p.Body = http.MethodPost, "/orders", body
	p.Header = o.c.header(p.Client)
	p.Header.Set("Content-Type", "application/json")
	p.Header.Set("Idempotency-Key", p.Key)
	s.Remember(TagPlacements, *p)
	return nil
}

func (placeOrder) Resolve(*loadgen.Plan, *loadgen.State) error { return nil }

func (placeOrder) Observe(p *loadgen.Plan, r *loadgen.Result, body []byte, s *loadgen.State) {
	observePlacement(p, r, body, s)
}

// retryOrder re-sends an earlier placement byte for byte, with the same key and the same
// client, as a client that never saw the first answer would. With no earlier placement it
// places a fresh order.
type retryOrder struct{ c *refConfig }

func (retryOrder) Name() string { return JourneyRetryOrder }

func (o retryOrder) Plan(p *loadgen.Plan, s *loadgen.State) error {
	orig, ok := s.Recall(TagPlacements)
	if !ok {
		p.Performed = JourneyPlaceOrder
		return placeOrder(o).Plan(p, s)
	}
	p.Client, p.Key, p.Ref = orig.Client, orig.Key, orig.Seq
	p.Attrs = maps.Clone(orig.Attrs)
	p.Method, p.Path, p.Body = orig.Method, orig.Path, orig.Body
	p.Header = orig.Header.Clone()
	return nil
}

func (retryOrder) Resolve(*loadgen.Plan, *loadgen.State) error { return nil }

func (retryOrder) Observe(p *loadgen.Plan, r *loadgen.Result, body []byte, s *loadgen.State) {
	observePlacement(p, r, body, s)
}

func observePlacement(p *loadgen.Plan, r *loadgen.Result, body []byte, s *loadgen.State) {
	r.OK = r.Status >= 200 && r.Status < 300
	if !r.OK {
		return
	}
	if r.Created = orderID(body); r.Created != "" {
		s.Learn(ordersOf(p.Client), r.Created)
	}
}

// orderRequest is the gateway's POST /orders body.
type orderRequest struct {
	MerchantID string `json:"merchant_id"`
	ProductID  string `json:"product_id"`
	Quantity   int    `json:"quantity"`
}

// orderID finds the order id in a gateway answer: {"id"}, {"order_id"} or {"order":{"id"}}.
func orderID(body []byte) string {
	var v struct {
		ID      json.RawMessage `json:"id"`
		OrderID json.RawMessage `json:"order_id"`
		Order   *struct {
			ID json.RawMessage `json:"id"`
		} `json:"order"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	for _, raw := range []json.RawMessage{v.OrderID, v.ID} {
		if id := idText(raw); id != "" {
			return id
		}
	}
	if v.Order != nil {
		return idText(v.Order.ID)
	}
	return ""
}

// idText accepts an id written as a JSON string or number.
func idText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		if _, err := strconv.ParseFloat(n.String(), 64); err == nil {
			return n.String()
		}
	}
	return ""
}
