package merchant

import (
	"context"
	"fmt"

	refv1 "github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/lifecycle"
	"github.com/faultline-dev/faultline/reference-services/node"
)

// Run is the process main for kind "merchant": it serves MerchantService until ctx ends,
// then deregisters, drains and closes the database.
func Run(ctx context.Context, n *node.Node) error {
	n.Pending("db", "opening database")
	n.Pending("grpc", "starting grpc server")
	n.Pending("registry", "registering instance")
	n.Ready("init")

	db, err := lifecycle.OpenStore(ctx, n)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	if err := Prepare(ctx, db, lifecycle.Catalog(n)); err != nil {
		return fmt.Errorf("prepare merchant store: %w", err)
	}
	n.Ready("db")

	gs, hs := lifecycle.NewGRPCServer()
	refv1.RegisterMerchantServiceServer(gs, NewServer(db))
	p, err := lifecycle.Serve(ctx, n, nil, gs, hs, refv1.MerchantService_ServiceDesc.ServiceName)
	defer p.Shutdown()
	if err != nil {
		return err
	}
	return p.Wait(ctx)
}
