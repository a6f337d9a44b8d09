package main

import (
	_ "github.com/Shopify/toxiproxy/v2"
	_ "github.com/Shopify/toxiproxy/v2/client"
	_ "github.com/failsafe-go/failsafe-go/failsafegrpc"
	_ "github.com/failsafe-go/failsafe-go/budget"
	_ "github.com/failsafe-go/failsafe-go/circuitbreaker"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/spf13/cobra"
	_ "github.com/stretchr/testify/assert"
	_ "github.com/stretchr/testify/mock"
	_ "github.com/testcontainers/testcontainers-go"
	_ "github.com/tsenart/vegeta/v12/lib"
	_ "go.etcd.io/etcd/client/v3"
	_ "go.etcd.io/etcd/server/v3/embed"
	_ "go.yaml.in/yaml/v3"
	_ "gonum.org/v1/plot/vg/vgsvg"
	_ "gonum.org/v1/plot/plotter"
	_ "google.golang.org/grpc"
	_ "modernc.org/sqlite"
)

func main() {}
